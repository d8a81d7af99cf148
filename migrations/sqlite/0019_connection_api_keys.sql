-- The API key an assessment partner asks for besides its OAuth 2 token, sealed as the
-- connection's secret is (bound to its own purpose, so one cannot stand in for the other).
ALTER TABLE connections ADD COLUMN api_key TEXT;
