"""tickcast: online_learning."""
