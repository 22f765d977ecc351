"""Synthetic IDEAL-IQ spine studies with ground truth (tests, demo, benchmarks)."""
