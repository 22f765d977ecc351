"""A frame's rescaled values are checked for float32 overflow only when its stored integers can
overflow with its slope and intercept (issue 13: the check over every frame of a plain study,
whose 16-bit pixels times a slope near 1 cannot overflow, was ~5 ms of a cold ``analyze``)."""

from __future__ import annotations

import numpy as np
import pytest

from RefractureRiskLib.io.dicom_volume import _always_finite

DTYPES = ("<u1", "<i1", "<u2", "<i2", "<u4", "<i4")


def _mapped(dtype: np.dtype, slope: float, intercept: float) -> np.ndarray:
    """The dtype's extreme stored values mapped as read_stack maps a frame."""
    info = np.iinfo(dtype)
    raw = np.array([info.min, info.max, 0, 1], dtype)
    out = np.empty(raw.shape, np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        np.multiply(raw, np.float32(slope), out=out, casting="unsafe")
        if intercept:
            out += np.float32(intercept)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_skipping_the_check_is_only_claimed_when_no_value_can_overflow(dtype: str) -> None:
    dt = np.dtype(dtype)
    rng = np.random.default_rng(len(dtype) + dt.itemsize)
    largest = max(abs(int(np.iinfo(dt).min)), int(np.iinfo(dt).max))
    edge = float(np.finfo(np.float32).max) / largest  # slopes about where overflow starts
    slopes = [1.0, 0.001, -2.5, 100.0, edge * 0.999, edge, edge * 1.001, 1e38, 3e38]
    slopes += [*(edge * rng.uniform(0.9, 1.1, 40)), float("nan"), float("inf")]
    claimed = 0
    for slope in slopes:
        for intercept in (0.0, -1024.0, 3e38, float("nan")):
            for sign in (1.0, -1.0):
                if _always_finite(dt, sign * slope, intercept):
                    claimed += 1
                    assert np.isfinite(_mapped(dt, sign * slope, intercept)).all()
    assert claimed >= 10  # the ordinary slopes are claimed


def test_ordinary_and_corrupt_mappings() -> None:
    assert _always_finite(np.dtype("<u2"), 1.0, 0.0)
    assert _always_finite(np.dtype("<i2"), 0.1, -1000.0)
    assert not _always_finite(np.dtype("<u2"), 1e38, 0.0)  # the check still runs
    assert not _always_finite(np.dtype("<f4"), 1.0, 0.0)  # decoded floats: always checked
    assert not _always_finite(np.dtype("<u2"), float("nan"), 0.0)
    assert not _always_finite(np.dtype("<u2"), 1.0, 1e39)
