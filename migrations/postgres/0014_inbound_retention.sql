-- A pushed body is deleted from data_dir/inbound/ once its delivery has been final for
-- `[inbound] keep_bodies_days`; the delivery stays, and says when its body went.
ALTER TABLE inbound_deliveries ADD COLUMN body_purged_at TIMESTAMPTZ;
-- The retention sweep's search: final deliveries with a body, oldest first.
CREATE INDEX inbound_deliveries_retention_idx ON inbound_deliveries (updated_at)
    WHERE body_purged_at IS NULL;
