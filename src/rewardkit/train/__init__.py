"""Training recipes, one self-contained module per objective (config dataclass beside each)."""
