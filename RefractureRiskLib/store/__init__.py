"""Measurement store: who measured what, when and how (append-only)."""
