"""Hyper-parameter sets, as plain data."""
