"""Per-ROI statistics and per-patient summaries (global L1-L4, adjacent levels)."""
