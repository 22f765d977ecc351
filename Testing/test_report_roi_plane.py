"""report/panels._roi_plane finds the ROI voxels in their bounding box (issue 13: np.argwhere over
the whole label map was ~6 ms of a cold ``analyze``): the same plane and field of view as
np.argwhere's indices give."""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.core.roiset import RoiMethod, RoiSet
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.report.panels import _roi_plane


def _plain(labelmap: Volume):
    m = labelmap.ijk_to_ras
    ijk = np.argwhere(np.asarray(labelmap.array) > 0)[:, ::-1].astype(float)
    if ijk.size == 0:
        nk, nj, ni = labelmap.shape
        return float(m[0, :3] @ (ni / 2, nj / 2, nk / 2) + m[0, 3]), None
    yz = (ijk[:, None, :] * m[None, 1:3, :3]).sum(axis=2) + m[1:3, 3]
    lo, hi = yz.min(axis=0), yz.max(axis=0)
    return float(m[0, :3] @ ijk.mean(axis=0) + m[0, 3]), (
        lo[0] - 45.0,
        hi[0] + 25.0,
        lo[1] - 20.0,
        hi[1] + 20.0,
    )


def test_the_plane_and_field_of_view_are_argwheres() -> None:
    rng = np.random.default_rng(2)
    for n in range(25):
        shape = tuple(int(s) for s in rng.integers(4, 40, 3))
        labels = np.zeros(shape, np.int16)
        if n:  # the first map has no ROI voxels
            lo = [int(rng.integers(0, s - 1)) for s in shape]
            labels[lo[0] : lo[0] + 6, lo[1] : lo[1] + 9, lo[2] : lo[2] + 7] = rng.integers(
                0, 3, labels[lo[0] : lo[0] + 6, lo[1] : lo[1] + 9, lo[2] : lo[2] + 7].shape
            )
        mat = np.eye(4)
        mat[:3, :3] = np.linalg.qr(rng.normal(size=(3, 3)))[0] @ np.diag(rng.uniform(0.5, 4, 3))
        mat[:3, 3] = rng.uniform(-100.0, 100.0, 3)
        volume = Volume(labels, mat)
        roiset = RoiSet(volume, (), RoiMethod.AUTOMATIC)
        assert _roi_plane(roiset) == _plain(volume)
