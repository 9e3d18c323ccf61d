"""The `rewardkit` command line: one module per verb."""
