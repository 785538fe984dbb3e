"""tickcast: live market ticks to stock predictions (Kafka, Faust, Redis, ClickHouse, MLflow)."""

__version__ = "0.1.0"
