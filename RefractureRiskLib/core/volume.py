"""``Volume``: a 3D array indexed ``[k, j, i]`` with its IJK-to-RAS matrix.

Conventions (the same as Slicer's):

- ``array[k, j, i]``: k = slice, j = row, i = column, which is what SimpleITK's
  ``GetArrayFromImage`` and Slicer's ``arrayFromVolume`` return.
- ``ijk_to_ras``: 4x4 homogeneous matrix mapping the voxel index ``(i, j, k, 1)`` to patient
  coordinates in millimetres, RAS: +x towards the patient's Right, +y Anterior, +z Superior.
  DICOM and ITK use LPS (+x Left, +y Posterior): ``ras = diag(-1, -1, 1) @ lps``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True, eq=False)
class Volume:
    """An image on a regular grid.

    ``array`` is indexed ``[k, j, i]``; ``ijk_to_ras`` is a 4x4 affine (millimetres, RAS).
    Both are stored read-only so a Volume can be shared without copies.
    """

    array: npt.NDArray
    ijk_to_ras: npt.NDArray[np.float64] = field(default_factory=lambda: np.eye(4))

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise ValueError(f"Volume array must be 3D [k, j, i], got shape {arr.shape}")
        mat = np.array(self.ijk_to_ras, dtype=np.float64)
        if mat.shape != (4, 4):
            raise ValueError(f"ijk_to_ras must be 4x4, got shape {mat.shape}")
        if not np.allclose(mat[3], [0.0, 0.0, 0.0, 1.0]):
            raise ValueError(f"ijk_to_ras last row must be [0, 0, 0, 1], got {mat[3]}")
        if abs(np.linalg.det(mat[:3, :3])) < 1e-12:
            raise ValueError("ijk_to_ras is singular (zero spacing or collinear axes)")
        if arr.flags.writeable:
            arr = arr.view()
            arr.flags.writeable = False
        mat.flags.writeable = False
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "ijk_to_ras", mat)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_geometry(
        cls,
        array: npt.ArrayLike,
        spacing_mm: Sequence[float],
        origin_ras: Sequence[float] = (0.0, 0.0, 0.0),
        directions_ras: npt.ArrayLike | None = None,
    ) -> Volume:
        """Build from spacing (i, j, k order, mm), origin (RAS, mm) and a 3x3 direction matrix.

        ``directions_ras`` has the unit direction of the i, j, k axes as its *columns*.
        """
        direction = np.eye(3) if directions_ras is None else np.asarray(directions_ras, float)
        mat = np.eye(4)
        mat[:3, :3] = direction * np.asarray(spacing_mm, float)[np.newaxis, :]
        mat[:3, 3] = np.asarray(origin_ras, float)
        return cls(np.asarray(array), mat)

    def with_array(self, array: npt.ArrayLike) -> Volume:
        """A volume on the same grid with other voxel values (same shape required)."""
        arr = np.asarray(array)
        if arr.shape != self.shape:
            raise ValueError(f"shape {arr.shape} does not match grid shape {self.shape}")
        return Volume(arr, self.ijk_to_ras)

    # -- geometry ----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(nk, nj, ni)``."""
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> npt.NDArray[np.float64]:
        """Voxel size along i, j, k in millimetres."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def origin_ras(self) -> npt.NDArray[np.float64]:
        """RAS position (mm) of the centre of voxel (0, 0, 0)."""
        return self.ijk_to_ras[:3, 3].copy()

    @property
    def directions_ras(self) -> npt.NDArray[np.float64]:
        """3x3 matrix whose columns are the unit RAS directions of the i, j, k axes."""
        return self.ijk_to_ras[:3, :3] / self.spacing_mm[np.newaxis, :]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (1 mL = 1000 mm^3)."""
        return float(abs(np.linalg.det(self.ijk_to_ras[:3, :3])) / 1000.0)

    @property
    def ras_to_ijk(self) -> npt.NDArray[np.float64]:
        """Inverse of :attr:`ijk_to_ras`."""
        return np.linalg.inv(self.ijk_to_ras)

    def ras_to_ijk_points(self, points_ras: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Continuous (i, j, k) indices of RAS points, shape (n, 3)."""
        pts = np.atleast_2d(np.asarray(points_ras, float))
        homo = np.c_[pts, np.ones(len(pts))]
        return (homo @ self.ras_to_ijk.T)[:, :3]

    def ijk_to_ras_points(self, points_ijk: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """RAS positions (mm) of (i, j, k) indices, shape (n, 3)."""
        pts = np.atleast_2d(np.asarray(points_ijk, float))
        homo = np.c_[pts, np.ones(len(pts))]
        return (homo @ self.ijk_to_ras.T)[:, :3]

    def same_grid(self, other: Volume, tol_mm: float = 1e-4) -> bool:
        """True when both volumes have the same shape and voxel positions agree within tol_mm."""
        if self.shape != other.shape:
            return False
        # Compare the positions of the grid corners: covers spacing, direction and origin.
        corners = np.array(
            [
                [i, j, k]
                for i in (0, self.shape[2] - 1)
                for j in (0, self.shape[1] - 1)
                for k in (0, self.shape[0] - 1)
            ],
            float,
        )
        diff = self.ijk_to_ras_points(corners) - other.ijk_to_ras_points(corners)
        return bool(np.max(np.abs(diff)) <= tol_mm)

    def describe_geometry(self) -> str:
        """One line: shape, spacing and origin, for tables and messages."""
        nk, nj, ni = self.shape
        sp = ", ".join(f"{s:.3g}" for s in self.spacing_mm)
        org = ", ".join(f"{o:.1f}" for o in self.origin_ras)
        return f"{ni}x{nj}x{nk} voxels, spacing ({sp}) mm, origin RAS ({org})"
