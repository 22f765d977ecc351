"""Figures and the one-page HTML/PDF report."""
