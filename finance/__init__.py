"""Returns, risk metrics and position rules shared by training, online evaluation and backtests."""
