"""``finpulse bench pipeline``: the streaming pipeline measured end to end against the model's ceiling."""
