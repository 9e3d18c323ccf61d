"""Using rewards: automatic step labels (label_steps), PRM-guided search (search)."""
