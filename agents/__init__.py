"""tickcast: agents."""
