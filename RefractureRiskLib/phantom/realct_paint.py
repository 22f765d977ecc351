"""Tissue values of a real-CT study (:mod:`.realct`): the values drawn from the seed, the
pathology blob, and the painting of proton density, fat fraction, R2*, tissue and body label at
RAS points from the CT's sampled fields (:mod:`.realct_case`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from RefractureRiskLib.core.levels import level_label
from RefractureRiskLib.phantom.realct_case import CaseFields, RealCtCase, to_kji
from RefractureRiskLib.phantom.truth import Tissue

if TYPE_CHECKING:
    from RefractureRiskLib.phantom.realct import RealCtSpec

CORE_DEPTH_MM = 3.0  # core marrow: at least this deep inside the body surface
CORTEX_MM = 1.0  # cortical shell: no signal
VOID_R2S = 800.0  # true R2* of signal voids (gas, cortex, cement) at 1.5 T, 1/s
# Soft tissue by HU (outside the spine masks): proton density (marrow = 1), fat fraction, R2* at
# 1.5 T. "F" is the patient's fat PDFF, "M" muscle/organ, "P" pelvic/femoral marrow (per seed).
HU_KNOTS = np.array([-1000, -500, -190, -60, -5, 20, 35, 120, 180, 400, 800], np.float32)
PD_KNOTS = np.array([0, 0, 1, 1, 1, 1, 0.75, 0.75, 0.85, 0.5, 0], np.float32)
R2_KNOTS = np.array([800, 800, 25, 25, 8, 8, 30, 30, 90, 120, 300], np.float32)


@dataclass(frozen=True)
class TissueValues:
    """Tissue values drawn from the seed (PDFF as fractions here, R2* in 1/s at 1.5 T)."""

    level_ff: Mapping[int, float]  # core marrow per body label (after oedema)
    level_r2: Mapping[int, float]
    oedema_pct: float
    rim_drop: float
    fat_ff: float
    muscle_ff: float
    disc_ff: float
    pelvis_ff: float
    lesion_ff: float
    texture: npt.NDArray | None  # marrow PDFF offsets (fraction) on the padded CT grid


def draw_values(
    case: RealCtCase, spec: RealCtSpec, rng: np.random.Generator, tex_rng: np.random.Generator
) -> TissueValues:
    mean = spec.marrow_pdff_pct if spec.marrow_pdff_pct is not None else rng.uniform(30, 70)
    r2 = rng.uniform(60.0, 120.0)
    ff, r2s = {}, {}
    oedema = rng.uniform(10.0, 30.0)  # always drawn: pathology never changes the other values
    oedema = oedema if spec.pathology == "oedema" else 0.0
    for name in case.levels:
        lab = level_label(name)
        pct = mean + 1.0 * (lab - level_label("L3")) + rng.normal(0.0, 2.0)  # fattier caudally
        pct = float(np.clip(pct, 8.0, 90.0))
        if name == spec.pathology_level and oedema:
            oedema = min(oedema, pct - 5.0)
            pct -= oedema
        ff[lab], r2s[lab] = pct / 100.0, float(r2 * (1.0 + rng.normal(0.0, 0.08)))
    return TissueValues(
        level_ff=ff,
        level_r2=r2s,
        oedema_pct=float(oedema),
        rim_drop=rng.uniform(4.0, 8.0) / 100.0,
        fat_ff=rng.uniform(0.85, 0.95),
        muscle_ff=rng.uniform(0.02, 0.10),
        disc_ff=rng.uniform(0.0, 0.05),
        pelvis_ff=float(np.clip(mean / 100 + rng.uniform(0.05, 0.2), 0.5, 0.9)),
        lesion_ff=rng.uniform(0.75, 0.92),
        texture=_texture(case, spec.marrow_texture_pct, tex_rng),
    )


def _texture(case: RealCtCase, sd_pct: float, rng: np.random.Generator) -> npt.NDArray | None:
    """Smooth marrow PDFF variation (fraction; padded CT grid): SD ``sd_pct`` points over the
    body cores, zero mean over each body's core so the level values hold on average."""
    if sd_pct <= 0:
        return None
    noise = ndi.gaussian_filter(rng.standard_normal(case.ct_hu.shape).astype(np.float32), 1.5)
    core = case.fields.stack[1:-1, 1:-1, 1:-1, 1] >= CORE_DEPTH_MM
    for v in np.unique(case.bodies.array[core]):
        part = core & (case.bodies.array == v)
        noise[case.bodies.array == v] -= noise[part].mean()
    noise *= sd_pct / 100.0 / max(float(noise[core].std()), 1e-6)
    return np.pad(noise, 1)


@dataclass(frozen=True)
class Blob:
    """Cement or haemangioma: a sphere (RAS mm) inside one body."""

    label: int
    centre: npt.NDArray[np.float64]
    radius_mm: float


def place_blob(case: RealCtCase, f: CaseFields, spec: RealCtSpec, rng: np.random.Generator):
    if spec.pathology not in ("cement", "haemangioma") or spec.pathology_level is None:
        return None
    lab = level_label(spec.pathology_level)
    depth = np.where(case.bodies.array == lab, f.stack[1:-1, 1:-1, 1:-1, 1], -1.0)
    deepest = float(depth.max())
    radius = rng.uniform(7.0, 10.0) if spec.pathology == "cement" else rng.uniform(4.0, 7.0)
    radius = min(radius, deepest - 2.0)
    cement = spec.pathology == "cement"
    ijk = np.argwhere(depth >= (deepest - 3.0 if cement else min(radius + 3.0, deepest - 1.0)))
    ras = case.ct_hu.ijk_to_ras_points(ijk[:, ::-1])
    centre = ras.mean(axis=0) if cement else ras[rng.integers(len(ras))]
    return Blob(lab, centre + rng.uniform(-2, 2, 3), float(radius))


def paint(
    case: RealCtCase,
    f: CaseFields,
    v: TissueValues,
    blob: Blob | None,
    spec: RealCtSpec,
    xyz: tuple,
) -> tuple[npt.NDArray, ...]:
    """Proton density (marrow = 1), fat fraction, R2* (1/s at 1.5 T), tissue and body label at
    RAS points ``xyz`` (arrays of one shape)."""
    shape = xyz[0].shape
    hu, sb, sd, sv, near, texture = f.sample(to_kji(f, xyz), v.texture)
    pd, ff, r2, tissue = _soft_tissue(hu, v)

    def put(mask: npt.NDArray, t: int, p: float, fat: object, rr: object) -> None:
        sel = [a[mask] if isinstance(a, np.ndarray) else a for a in (fat, rr)]
        tissue[mask], pd[mask], ff[mask], r2[mask] = t, p, sel[0], sel[1]

    # bone next to the spine surface and the shell of the posterior elements: cortex, no signal
    put((sv > -2.0) & (sv <= 0) & (hu > 150), Tissue.CORTEX, 0, 0, VOID_R2S)
    post = sv > 0
    mean_ff = float(np.mean(list(v.level_ff.values())))
    mean_r2 = float(np.mean(list(v.level_r2.values())))
    put(post, Tissue.POSTERIOR_ELEMENT, 0.8, min(mean_ff + 0.05, 0.95), 1.2 * mean_r2)
    put(post & ((sv < CORTEX_MM) | (hu > 450)), Tissue.CORTEX, 0, 0, VOID_R2S)
    put((sd > 0) & (sb <= 0), Tissue.DISC, 0.9, v.disc_ff, 15.0)
    body = (sb > 0) & (near > 0)
    lab = np.where(body, near, 0).astype(np.int16)
    core_ff = np.zeros_like(ff)
    core_r2 = np.zeros_like(r2)
    for label, value in v.level_ff.items():
        core_ff[lab == label], core_r2[lab == label] = value, v.level_r2[label]
    core_ff += np.where(lab > 0, texture, 0)
    closeness = np.clip((CORE_DEPTH_MM - sb) / (CORE_DEPTH_MM - CORTEX_MM), 0.0, 1.0)
    rim = body & (sb < CORE_DEPTH_MM)
    put(body, Tissue.MARROW_CORE, 1.0, core_ff, core_r2)
    put(rim, Tissue.MARROW_RIM, 1.0, np.clip(core_ff - v.rim_drop * closeness, 0, 1),
        core_r2 * (1 + 0.3 * closeness))  # fmt: skip
    put(body & (sb < CORTEX_MM), Tissue.CORTEX, 0, 0, VOID_R2S)
    if blob is not None:
        d2 = sum((np.ravel(c) - c0) ** 2 for c, c0 in zip(xyz, blob.centre, strict=True))
        inside = (lab == blob.label) & (d2 < blob.radius_mm**2)
        if spec.pathology == "cement":
            put(inside, Tissue.CEMENT, 0, 0, VOID_R2S)
        else:
            put(inside, Tissue.LESION, 1.0, v.lesion_ff, 0.6 * v.level_r2[blob.label])
    return tuple(a.reshape(shape) for a in (pd, ff, r2, tissue, lab))


def _soft_tissue(hu: npt.NDArray, v: TissueValues) -> tuple[npt.NDArray, ...]:
    """Proton density, fat fraction, R2* and tissue by HU alone (outside the spine masks)."""
    pd = np.interp(hu, HU_KNOTS, PD_KNOTS).astype(np.float32)
    ff_knots = [v.fat_ff] * 4 + [0.01, 0.01] + [v.muscle_ff] * 2 + [v.pelvis_ff] * 3
    ff = np.interp(hu, HU_KNOTS, np.array(ff_knots, np.float32)).astype(np.float32)
    r2 = np.interp(hu, HU_KNOTS, R2_KNOTS).astype(np.float32)
    tissue = np.select(
        [hu < -500, hu < -30, hu < 20, hu < 150, hu < 400],
        [
            Tissue.AIR,
            Tissue.SUBCUTANEOUS_FAT,
            Tissue.CSF,
            Tissue.SOFT_TISSUE,
            Tissue.OTHER_VERTEBRA,
        ],
        Tissue.CORTEX,
    ).astype(np.uint8)
    return pd, ff, r2, tissue


def skin_y(case: RealCtCase, f: CaseFields, x_mid: float, zs: npt.NDArray) -> tuple[float, float]:
    """(posterior, anterior) skin y (RAS mm) on the line through the spine at heights ``zs``."""
    lo, hi = np.sort(case.ct_hu.ijk_to_ras_points([[0, 0, 0], np.array(case.ct_hu.shape[::-1])]), 0)
    ys = np.arange(lo[1], hi[1], 2.0)
    yy, zz = np.meshgrid(ys, zs)
    hu = f.sample(to_kji(f, (np.full(yy.shape, x_mid), yy, zz)))[0].reshape(yy.shape)
    inside = hu > -300
    back = [ys[r.argmax()] for r in inside if r.any()]
    front = [ys[len(r) - 1 - r[::-1].argmax()] for r in inside if r.any()]
    return float(np.median(back)), float(np.median(front))
