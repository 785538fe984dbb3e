"""tickcast: schemas."""
