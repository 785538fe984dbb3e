"""tickcast: training."""
