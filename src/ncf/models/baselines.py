"""Non-neural baselines (filled in by the evaluation work)."""
