"""Agency systems → Kafka: pseudonymisation, file ingestion, the publisher, the synthetic generator."""
