"""Land token-usage events from Kafka into DuckDB exactly once (work in progress)."""
