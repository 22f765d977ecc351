"""Sagittal reformat of a Volume through a chosen RAS x position, for figures.

Works for sagittal, axial and oblique acquisitions alike: a regular (anterior-posterior x
superior-inferior) grid of RAS points in the plane x = ``x_ras`` is mapped to continuous voxel
indices and interpolated (linear for maps, nearest for label maps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from RefractureRiskLib.core.volume import Volume


@dataclass(frozen=True)
class SagittalPlane:
    """A reformatted image: ``image[row, col]`` with rows superior->inferior, columns
    anterior->posterior; ``extent_mm`` = (left, right, bottom, top) of the image's edges in
    RAS millimetres (A/P as -y so anterior is on the left, S/I as z)."""

    image: npt.NDArray
    extent_mm: tuple[float, float, float, float]
    x_ras: float

    @property
    def orientation(self) -> dict[str, str]:
        """The patient direction at each image edge (radiological letters).

        The plane is sampled on a RAS grid through each volume's IJK-to-RAS matrix, so these hold
        for any acquisition (sagittal, axial, oblique; any voxel order): the columns run from
        anterior (high RAS y) to posterior, the rows from superior (high z) to inferior.
        """
        return {"left": "A", "right": "P", "top": "S", "bottom": "I"}


def _ras_bounds(volume: Volume) -> tuple[npt.NDArray, npt.NDArray]:
    nk, nj, ni = volume.shape
    corners = np.array(
        [[i, j, k] for i in (0, ni - 1) for j in (0, nj - 1) for k in (0, nk - 1)], float
    )
    ras = volume.ijk_to_ras_points(corners)
    return ras.min(axis=0), ras.max(axis=0)


def _around(data: npt.NDArray, coords: npt.NDArray) -> tuple[npt.NDArray, npt.NDArray]:
    """The part of ``data`` that interpolating at ``coords`` (array axes x points) reads, and
    the coordinates in it: the same values, without converting and reading the whole volume."""
    shape = np.array(data.shape)
    if coords.size == 0:
        return data, coords
    lo = np.clip(np.floor(coords.min(axis=1)).astype(int), 0, shape - 1)
    hi = np.clip(np.floor(coords.max(axis=1)).astype(int) + 2, lo + 1, shape)
    part = data[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
    return part, coords - lo[:, None]


def sagittal_plane(
    volume: Volume,
    x_ras: float,
    spacing_mm: float = 1.0,
    labels: bool = False,
    bounds_mm: tuple[float, float, float, float] | None = None,
) -> SagittalPlane:
    """Reformat ``volume`` on the sagittal plane x = ``x_ras`` (mm).

    ``bounds_mm`` = (y_min, y_max, z_min, z_max) in RAS; default: the volume's bounding box.
    Points outside the volume get 0.
    """
    lo, hi = _ras_bounds(volume)
    y0, y1, z0, z1 = bounds_mm if bounds_mm else (lo[1], hi[1], lo[2], hi[2])
    ys = np.arange(y1, y0 - 1e-9, -spacing_mm)  # columns: anterior (high y) -> posterior
    zs = np.arange(z1, z0 - 1e-9, -spacing_mm)  # rows: superior -> inferior
    # (i, j, k) of every grid point, row by row: the affine map written out (elementwise, no
    # matrix product: in a new process that would start the BLAS threads for a small job)
    m = volume.ras_to_ijk
    ijk = (
        (m[:3, 0] * x_ras + m[:3, 3]) + zs[:, None, None] * m[:3, 2] + ys[None, :, None] * m[:3, 1]
    )
    coords = ijk.reshape(-1, 3)[:, ::-1].T  # array axes are [k, j, i]
    data, coords = _around(np.asarray(volume.array), coords)
    order = 0 if labels else 1
    values = ndimage.map_coordinates(
        data.astype(np.float32) if not labels else data, coords, order=order, cval=0.0
    )
    image = values.reshape(len(zs), len(ys))
    extent = (-float(ys[0]), -float(ys[-1]), float(zs[-1]), float(zs[0]))
    return SagittalPlane(image, extent, float(x_ras))
