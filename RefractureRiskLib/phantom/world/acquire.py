"""Acquisition of the world: grid geometry, partial-volume signals, coil shading and noise.

Sagittal grids: i (columns) A->P, j (rows) S->I, k (slices) L->R; axial grids: i R->L,
j A->P, k I->S; both tilted by ``oblique_deg`` about the i axis. Signals are relative to fat
proton density 1. Noise is complex Gaussian per water and fat channel with SD
``0.9 / snr`` (marrow total signal over noise), magnitudes taken, and PDFF computed from the
noisy magnitudes as a magnitude fitter would: fat / (water + fat).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.phantom.world.canvas import Canvas
from RefractureRiskLib.phantom.world.chain import Vertebra
from RefractureRiskLib.phantom.world.spec import WorldSpec

MARROW_SIGNAL = 0.9
#: In-phase / out-of-phase echo times (ms) by field strength.
ECHO_TIMES_MS = {1.5: (2.3, 4.6), 3.0: (1.15, 2.3)}


@dataclass(frozen=True)
class Grid:
    """Acquisition grid: ``ijk_to_ras`` (4x4, k spacing = thickness + gap), shape (nk, nj, ni),
    ``thickness_mm`` and ``nsub`` sub-slices per slice for partial volume."""

    ijk_to_ras: npt.NDArray[np.float64]
    shape: tuple[int, int, int]
    thickness_mm: float
    nsub: int

    def canvas(self) -> Canvas:
        spacing_k = float(np.linalg.norm(self.ijk_to_ras[:3, 2]))
        kdir = self.ijk_to_ras[:3, 2] / spacing_k
        axes = np.column_stack([self.ijk_to_ras[:3, 0], self.ijk_to_ras[:3, 1], kdir])
        sub = (np.arange(self.nsub) + 0.5) / self.nsub - 0.5
        z = np.arange(self.shape[0])[:, None] * spacing_k + sub[None, :] * self.thickness_mm
        return Canvas(
            axes, self.ijk_to_ras[:3, 3], self.shape, z.ravel().astype(np.float32), self.nsub
        )

    def inside(self, pts: npt.NDArray) -> npt.NDArray[np.bool_]:
        """Points (n, 3 RAS) inside the imaged slab (in-plane extent and slab thickness)."""
        idx = (np.c_[pts, np.ones(len(pts))] @ np.linalg.inv(self.ijk_to_ras).T)[:, :3]
        nk, nj, ni = self.shape
        half_t = self.thickness_mm / 2 / np.linalg.norm(self.ijk_to_ras[:3, 2])
        return (
            (idx[:, 0] > -0.5) & (idx[:, 0] < ni - 0.5) & (idx[:, 1] > -0.5)
            & (idx[:, 1] < nj - 0.5) & (idx[:, 2] > -half_t) & (idx[:, 2] < nk - 1 + half_t)
        )  # fmt: skip


def _tilt(deg: float, axis: npt.NDArray) -> npt.NDArray:
    a = np.radians(deg)
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * kx + (1 - np.cos(a)) * kx @ kx


def make_grid(spec: WorldSpec, chain: list[Vertebra]) -> Grid:
    """The acquisition grid of ``spec`` around the built spine ``chain``."""
    byn = {v.name: v for v in chain}
    top = byn[spec.top_level].centre[2] + spec.top_margin_mm
    bottom = byn[spec.bottom_level].centre[2] - spec.bottom_margin_mm
    l3 = byn["L3"]
    y_back = l3.centre[1] - l3.depth_mm / 2 - 60 - spec.subcut_fat_mm
    sx, sy, sz = spec.fov_shift_mm
    spacing_k = spec.slice_thickness_mm + spec.slice_gap_mm
    n_inplane = round(spec.fov_mm / spec.pixel_mm)
    if spec.orientation == "sagittal":
        dirs = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)  # columns: i, j, k
        centre = np.array([l3.centre[0] + sx, y_back + spec.trunk_ap_mm / 2 + sy,
                           (top + bottom) / 2 + sz])  # fmt: skip
        nk = spec.n_slices
    else:
        dirs = np.array([[-1, 0, 0], [0, -1, 0], [0, 0, 1]], float)
        centre = np.array([sx, y_back + spec.trunk_ap_mm / 2 + sy, (top + bottom) / 2])
        nk = int(np.clip(np.ceil((top - bottom) / spacing_k) + 1, 4, 90))
    dirs = _tilt(spec.oblique_deg, dirs[:, 0]) @ dirs
    mat = np.eye(4)
    mat[:3, :3] = dirs * np.array([spec.pixel_mm, spec.pixel_mm, spacing_k])
    half = np.array([(n_inplane - 1) / 2, (n_inplane - 1) / 2, (nk - 1) / 2])
    mat[:3, 3] = centre - mat[:3, :3] @ half
    nsub = 1 if spec.slice_thickness_mm < 2.0 else 3 if spec.slice_thickness_mm <= 5.0 else 5
    return Grid(mat, (nk, n_inplane, n_inplane), spec.slice_thickness_mm, nsub)


def synthesise(
    grid: Grid,
    canvas: Canvas,
    tables: tuple[npt.NDArray, ...],
    spec: WorldSpec,
    rng: np.random.Generator,
    y_back: float,
) -> dict[str, npt.NDArray[np.float32]]:
    """Maps (float32, [k, j, i]) from the painted canvas: partial volume over sub-slices, coil
    shading, noise. Keys: pdff, r2s, water, fat, in_phase, out_phase (or only pdff, r2s)."""
    _, pd_t, ff_t, r2_t = tables
    nk, nj, ni = grid.shape
    sub = (nk, grid.nsub, nj, ni)
    pd = pd_t[canvas.mat]
    ff = np.clip(ff_t[canvas.mat] + canvas.off, 0, 100) / 100
    water = (pd * (1 - ff)).reshape(sub).mean(1)
    fat = (pd * ff).reshape(sub).mean(1)
    r2 = r2_t[canvas.mat].reshape(sub).mean(1)
    # coil shading: posterior (spine) coil, falling off anteriorly, plus a smooth random part
    kk, jj, ii = (np.arange(n, dtype=np.float32) for n in (nk, nj, ni))
    m = grid.ijk_to_ras.astype(np.float32)
    ras = [m[c, 0] * ii[None, None] + m[c, 1] * jj[None, :, None] + m[c, 2] * kk[:, None, None]
           + m[c, 3] for c in range(3)]  # fmt: skip
    t_ant = np.clip((ras[1] - np.float32(y_back)) / np.float32(spec.trunk_ap_mm), 0, 1.2)
    rand = np.zeros((nk, nj, ni), np.float32)
    for _ in range(3):  # smooth random part: plane waves of wavelength 150-400 mm
        kvec = rng.normal(size=3)
        kvec *= 2 * np.pi / rng.uniform(150, 400) / np.linalg.norm(kvec)
        phase = sum(np.float32(kvec[c]) * ras[c] for c in range(3))
        rand += np.cos(phase + np.float32(rng.uniform(0, 2 * np.pi))) / np.float32(np.sqrt(1.5))
    shade = np.float32(spec.coil_shading_frac)
    bias = ((1 - shade * t_ant) * (1 + 0.15 * shade * rand)).astype(np.float32)
    water, fat = water * bias, fat * bias
    te_in, te_out = ECHO_TIMES_MS[spec.field_strength_t]
    in_phase = (water + fat) * np.exp(-r2 * te_in / 1000)
    out_phase = np.abs(water - fat) * np.exp(-r2 * te_out / 1000)
    if spec.snr is not None:
        sigma = MARROW_SIGNAL / spec.snr

        def rician(s: npt.NDArray) -> npt.NDArray:
            n1 = rng.standard_normal(s.shape, dtype=np.float32)
            n2 = rng.standard_normal(s.shape, dtype=np.float32)
            return np.sqrt((s + sigma * n1) ** 2 + (sigma * n2) ** 2)

        snr_local = (water + fat) / sigma
        water, fat = rician(water), rician(fat)
        in_phase, out_phase = rician(in_phase), rician(out_phase)
        r2_sd = 30 * (1 + r2 / 100) / np.maximum(snr_local, 0.05)
        r2 = np.clip(r2 + r2_sd * rng.standard_normal(r2.shape, dtype=np.float32), 0, 1000)
    total = water + fat
    pdff = np.where(total > 0, 100 * fat / np.where(total > 0, total, 1), 0)
    maps = {"pdff": pdff, "r2s": r2, "water": water, "fat": fat, "in_phase": in_phase,
            "out_phase": out_phase}  # fmt: skip
    if spec.maps == "pdff+r2s":
        maps = {"pdff": pdff, "r2s": r2}
        if spec.vendor_mask:
            floor = 0.05 if spec.snr is None else min(5 * MARROW_SIGNAL / spec.snr, 0.3)
            bg = total < floor
            maps = {k: np.where(bg, 0, v) for k, v in maps.items()}
    return {k: np.asarray(v, np.float32) for k, v in maps.items()}
