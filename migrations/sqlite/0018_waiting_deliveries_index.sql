-- Deliveries still waiting to be processed (few at any time): what a starting gateway looks
-- through for score pushes stored without a job, without reading every delivery ever kept.
CREATE INDEX inbound_deliveries_waiting_idx ON inbound_deliveries (kind, created_at)
    WHERE status = 'received';
