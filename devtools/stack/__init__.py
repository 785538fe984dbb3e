"""The local stack: start, stop and check Kafka, Redis, ClickHouse (chDB) and MLflow."""
