"""Image grids shared by the file-format tests."""

from __future__ import annotations

import numpy as np


def oblique_ijk_to_ras() -> np.ndarray:
    """An IJK-to-RAS matrix rotated about two axes, spacing 0.78125 x 0.9 x 3.3 mm."""
    a, b = np.radians(17.0), np.radians(-24.0)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    m = np.eye(4)
    m[:3, :3] = (ry @ rx) * np.array([0.78125, 0.9, 3.3])
    m[:3, 3] = [-101.37, 57.2, -33.125]
    return m
