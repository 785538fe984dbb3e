"""tickcast: sinks."""
