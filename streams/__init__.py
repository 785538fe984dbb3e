"""tickcast: streams."""
