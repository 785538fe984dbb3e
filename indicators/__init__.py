"""tickcast: indicators."""
