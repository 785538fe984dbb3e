"""tickcast: live market ticks to stock predictions on Kafka, Faust, Redis, ClickHouse and MLflow."""

__version__ = "0.1.0"
