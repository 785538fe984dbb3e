"""Seeded synthetic markets, bars and outcomes for the demo, tests and benchmarks."""
