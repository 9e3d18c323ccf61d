"""Using rewards: automatic step labels (label_steps), PRM-guided search (search), preference-pair annotation
(annotate, pairs) and best-of-N overoptimization curves (overopt)."""
