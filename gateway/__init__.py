"""The ingestion gateway: agencies post events over HTTPS; the gateway authenticates, scopes, validates and
publishes them to Kafka as the contract says (`safeguard gateway run`, docs/gateway.md)."""
