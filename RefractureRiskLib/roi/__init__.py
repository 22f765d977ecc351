"""Vertebral ROIs: geometry, manual ROIs from points, automatic detection and labels, QC flags."""
