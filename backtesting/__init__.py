"""tickcast: backtesting."""
