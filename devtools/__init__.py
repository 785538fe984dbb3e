"""Development tooling: the local stack, the demo, sample data and a Prometheus runner.

The product never imports the stack or the demo; a reader of the product can skip this folder.
The sample data sources (``datasets``, ``synthetic``, ``feeds``) sit lower in the layer
contract (``.importlinter``): training and backtests accept a sample data set by name.
"""
