-- The events API filters a district's log by type (`?type=`), in id order.
CREATE INDEX outbox_events_district_type_idx ON outbox_events (district_id, event_type, id);
