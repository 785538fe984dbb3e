"""tickcast: serving."""
