"""Reward implementations, one module per kind."""
