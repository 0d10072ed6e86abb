"""Uses of fused features, each scored against ground truth where it exists."""
