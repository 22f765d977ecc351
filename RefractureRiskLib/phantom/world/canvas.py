"""The fine sampling grid the world is painted on, materials, and shape primitives.

The acquisition grid has voxel ``[k, j, i]`` at ``origin + i*di + j*dj + k*dk`` (RAS mm, d* the
axis vectors with spacing). The canvas samples each slice at ``nsub`` sub-slices spread over the
slice thickness (not the gap), so slice partial volume is modelled; in-plane it samples voxel
centres. Fine array index ``[f, j, i]`` with ``f = k * nsub + s``. Painting is "last wins":
later shapes overwrite earlier ones inside their mask. Shapes are evaluated only on the block
of the canvas covering their RAS bounding box.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from RefractureRiskLib.phantom.truth import Tissue

F32 = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]


class WorldTissue(IntEnum):
    """Tissue classes beyond :class:`Tissue` (0-15), for the world's surroundings."""

    SKIN = 16
    KIDNEY = 17
    LIVER = 18
    SPLEEN = 19
    BOWEL_WALL = 20
    BOWEL_FLUID = 21
    BOWEL_GAS = 22
    BOWEL_FAT_MIXED = 23  # faecal / fat-mixed contents, PDFF 20-60 %
    MESENTERIC_FAT = 24
    CORD = 25
    PELVIC_BONE = 26  # ilium, sacral alae
    RIB = 27
    OSTEOPHYTE = 28
    EPIDURAL_FAT = 29


@dataclass
class Materials:
    """Table of materials: tissue class, relative proton density ``pd`` (marrow ~0.9),
    ``pdff_pct`` and ``r2s_per_s`` (already at the study's field strength). Id 0 is air."""

    tissue: list[int]
    pd: list[float]
    pdff_pct: list[float]
    r2s_per_s: list[float]

    @classmethod
    def with_air(cls) -> Materials:
        return cls([int(Tissue.AIR)], [0.0], [0.0], [0.0])

    def add(self, tissue: int, pd: float, pdff_pct: float, r2s_per_s: float) -> int:
        self.tissue.append(int(tissue))
        self.pd.append(float(pd))
        self.pdff_pct.append(float(pdff_pct))
        self.r2s_per_s.append(float(r2s_per_s))
        return len(self.tissue) - 1

    def arrays(self) -> tuple[npt.NDArray, F32, F32, F32]:
        return (
            np.asarray(self.tissue, np.uint8),
            np.asarray(self.pd, np.float32),
            np.asarray(self.pdff_pct, np.float32),
            np.asarray(self.r2s_per_s, np.float32),
        )


class Canvas:
    """Fine material map ``mat`` (uint16), PDFF offset ``off`` (points, float32) and body
    label ``lev`` (int16, 0 outside labelled bodies) on the sub-sliced acquisition grid."""

    def __init__(
        self,
        axes: npt.NDArray,
        origin: npt.NDArray,
        shape: tuple[int, int, int],
        z_mm: F32,
        nsub: int = 1,
    ) -> None:
        # axes: 3x3, columns = i, j axis vectors (with spacing) and the unit k direction.
        self.axes = np.asarray(axes, float)
        self.origin = np.asarray(origin, float)
        self.z_mm = np.asarray(z_mm, np.float32)  # position of each sub-slice along k (mm)
        self.nsub = nsub  # sub-slices per acquired slice
        nf = len(self.z_mm)
        self.shape = (nf, shape[1], shape[2])
        self.mat = np.zeros(self.shape, np.uint16)
        self.off = np.zeros(self.shape, np.float32)
        self.lev = np.zeros(self.shape, np.int16)
        self._inv = np.linalg.inv(self.axes)

    def block(
        self, lo: npt.ArrayLike, hi: npt.ArrayLike
    ) -> tuple[tuple[slice, ...], F32, F32, F32] | None:
        """Canvas slices covering the RAS box [lo, hi] and the RAS coordinates of its points
        (three arrays broadcast to the block shape), or None when the box misses the grid."""
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                            for c in (lo[2], hi[2])])  # fmt: skip
        idx = (corners - self.origin) @ self._inv.T
        ranges = []
        for axis, n in ((0, self.shape[2]), (1, self.shape[1])):
            a = max(int(np.floor(idx[:, axis].min())), 0)
            b = min(int(np.ceil(idx[:, axis].max())) + 1, n)
            if a >= b:
                return None
            ranges.append(slice(a, b))
        f0 = int(np.searchsorted(self.z_mm, idx[:, 2].min(), "left"))
        f1 = int(np.searchsorted(self.z_mm, idx[:, 2].max(), "right"))
        if f0 >= f1:
            return None
        sl = (slice(f0, f1), ranges[1], ranges[0])
        ii = np.arange(ranges[0].start, ranges[0].stop, dtype=np.float32)
        jj = np.arange(ranges[1].start, ranges[1].stop, dtype=np.float32)
        zz = self.z_mm[f0:f1]
        pts = [
            (
                np.float32(self.origin[c])
                + zz[:, None, None] * np.float32(self.axes[c, 2])
                + jj[None, :, None] * np.float32(self.axes[c, 1])
                + ii[None, None, :] * np.float32(self.axes[c, 0])
            ).astype(np.float32)
            for c in range(3)
        ]
        return sl, pts[0], pts[1], pts[2]

    def points(self, fidx: npt.NDArray) -> tuple[F32, F32, F32]:
        """RAS coordinates (mm) of every point of the sub-slices ``fidx``, shape
        (len(fidx), nj, ni) each."""
        ii = np.arange(self.shape[2], dtype=np.float32)
        jj = np.arange(self.shape[1], dtype=np.float32)
        zz = self.z_mm[np.asarray(fidx)]
        shape = (len(zz), self.shape[1], self.shape[2])
        out = [
            np.broadcast_to(
                np.float32(self.origin[c])
                + zz[:, None, None] * np.float32(self.axes[c, 2])
                + jj[None, :, None] * np.float32(self.axes[c, 1])
                + ii[None, None, :] * np.float32(self.axes[c, 0]),
                shape,
            )
            for c in range(3)
        ]
        return out[0], out[1], out[2]

    def paint(
        self,
        lo: npt.ArrayLike,
        hi: npt.ArrayLike,
        shape: Callable[[F32, F32, F32], tuple[Mask, F32]],
        material: int | Callable[[F32, Mask], npt.NDArray],
        label: int | None = None,
        only_label: int | None = None,
        over: tuple[int, ...] | None = None,
        offset: Callable[[F32, F32, F32, F32], F32] | None = None,
    ) -> None:
        """Paint ``material`` where ``shape(x, y, z)`` is inside. ``shape`` returns (mask,
        depth mm); ``material`` is an id or a function of (depth, mask) giving ids per masked
        point. ``label`` sets ``lev``; ``only_label`` restricts painting to ``lev == only_label``;
        ``over`` restricts it to points whose current material is one of those;
        ``offset(x, y, z, depth)`` sets the PDFF offset (points) of the masked points."""
        blk = self.block(lo, hi)
        if blk is None:
            return
        sl, x, y, z = blk
        x, y, z = np.broadcast_arrays(x, y, z)
        mask, depth = shape(x, y, z)
        if only_label is not None:
            mask &= self.lev[sl] == only_label
        if over is not None:
            mask &= np.isin(self.mat[sl], over)
        if not mask.any():
            return
        mat = self.mat[sl]
        mat[mask] = material if isinstance(material, int) else material(depth[mask], mask)
        self.off[sl][mask] = (
            0.0 if offset is None else offset(x[mask], y[mask], z[mask], depth[mask])
        )
        if label is not None:
            self.lev[sl][mask] = label


# -- shape primitives: each returns (inside mask, approximate depth below the surface, mm) -----


def ellipsoid(centre: npt.ArrayLike, frame: npt.ArrayLike, radii: npt.ArrayLike):
    """Ellipsoid with semi-axes ``radii`` along the columns of ``frame`` (unit vectors)."""
    c = np.asarray(centre, np.float32)
    fr = np.asarray(frame, np.float32)
    r = np.asarray(radii, np.float32)

    def f(x: F32, y: F32, z: F32) -> tuple[Mask, F32]:
        dx, dy, dz = x - c[0], y - c[1], z - c[2]
        rho2 = np.zeros(x.shape, np.float32)
        for a in range(3):
            rho2 += ((dx * fr[0, a] + dy * fr[1, a] + dz * fr[2, a]) / r[a]) ** 2
        rho = np.sqrt(rho2)
        return rho < 1.0, (1.0 - rho) * r.min()

    ext = np.abs(fr) @ r
    return f, c - ext, c + ext


def capsule(p0: npt.ArrayLike, p1: npt.ArrayLike, r0: float, r1: float | None = None):
    """Tapered capsule: points within radius r(t) (r0 -> r1) of the segment p0 -> p1."""
    a = np.asarray(p0, np.float32)
    b = np.asarray(p1, np.float32)
    r1 = r0 if r1 is None else r1
    ab = b - a
    ll = float(ab @ ab) or 1e-6

    def f(x: F32, y: F32, z: F32) -> tuple[Mask, F32]:
        t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / ll, 0, 1)
        d = np.sqrt((x - a[0] - t * ab[0]) ** 2 + (y - a[1] - t * ab[1]) ** 2
                    + (z - a[2] - t * ab[2]) ** 2)  # fmt: skip
        r = r0 + (r1 - r0) * t
        return d < r, (r - d).astype(np.float32)

    rmax = max(r0, r1)
    return f, np.minimum(a, b) - rmax, np.maximum(a, b) + rmax


def smooth_field(
    rng: np.random.Generator, lo: npt.NDArray, hi: npt.NDArray, step_mm: float, sigma_mm: float
) -> Callable[[F32, F32, F32], F32]:
    """A smooth zero-mean unit-SD random field over the RAS box [lo, hi] (trilinear lookup;
    constant beyond the box)."""
    n = np.maximum(np.ceil((hi - lo) / step_mm).astype(int) + 2, 2)
    field = ndimage.gaussian_filter(rng.standard_normal(tuple(n)), sigma_mm / step_mm, mode="wrap")
    field = ((field - field.mean()) / (field.std() + 1e-9)).astype(np.float32)

    def f(x: F32, y: F32, z: F32) -> F32:
        coords = [(np.ravel(v) - lo[a]) / step_mm for a, v in enumerate((x, y, z))]
        out = ndimage.map_coordinates(field, coords, order=1, mode="nearest")
        return out.reshape(np.shape(x)).astype(np.float32)

    return f
