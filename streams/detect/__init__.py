"""The spike detector: pure, typed, tested without Kafka (no Faust import here)."""
