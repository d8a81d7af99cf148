-- A pushed body up to `[inbound] inline_body_bytes` is kept in its delivery's row: the push is
-- then durable with its one commit, instead of a file and a folder synced before it. The rule:
-- an inline body has `body_path = ''` and its bytes in `body` (NULL once purged); a larger body
-- keeps its file under data_dir/inbound/, named by `body_path`, and `body` is NULL.
ALTER TABLE inbound_deliveries ADD COLUMN body BYTEA;
