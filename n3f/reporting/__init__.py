"""What people read: the per-scene report (``report.md``), the aggregated tables and the figures in them.

Everything is recomputed from what the evaluation stages wrote (per-query
rows, JSON summaries) or rendered from the trained model; nothing is typed in.
"""
