"""tickcast: monitoring."""
