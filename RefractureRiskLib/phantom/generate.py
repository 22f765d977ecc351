"""``generate_phantom``: rasterise the phantom anatomy onto an acquisition grid.

How it works: the study grid is sampled at voxel centres in-plane and at ``n_sub`` (odd)
sub-sample positions across each slice. Each sub-sample gets a tissue (proton density, fat
fraction, R2*) by painting structures in order: trunk, subcutaneous fat, muscles, spinal canal
(global, in a frame that follows the spine curve), then discs and each vertebra (posterior
elements, body with cortex / rim / core, vein, lesion, cement) evaluated in the body's own frame
on its bounding box only. Sub-samples are averaged per voxel (water and fat densities;
signal-weighted R2*), so thick slices show partial volume. The body label of a voxel is the
level occupying more than half of its sub-samples. Work proceeds in slabs of slices to bound
memory. Random draws come from independent streams of ``SeedSequence(seed)`` (anatomy, tissue
values, bias field, noise), so e.g. changing the SNR never changes the anatomy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_index, level_label
from RefractureRiskLib.core.study import SeriesProvenance, Study, StudyProvenance
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.phantom import anatomy as an
from RefractureRiskLib.phantom.signal import bias_field as make_bias_field
from RefractureRiskLib.phantom.signal import echo_times_ms, synthesise_maps
from RefractureRiskLib.phantom.spec import PhantomSpec
from RefractureRiskLib.phantom.truth import PhantomLevel, PhantomStudy, PhantomTruth, Tissue

# Trunk cross-section relative to the spine curve (mm): ellipse centred TRUNK_CENTRE_V anterior.
TRUNK_HALF_WIDTH_MM = 165.0
TRUNK_HALF_AP_MM = 120.0
TRUNK_CENTRE_V_MM = 20.0
MARGIN_MM = 15.0
SLAB_HALF_WIDTH_MM = 48.0  # default sagittal coverage: +-48 mm about the spine
SLAB_SLICES = 8  # slices processed together
#: Tissues that mark a voxel when any of its slice sub-samples lies in them (later wins).
MARKED_IF_TOUCHED: tuple[Tissue, ...] = (Tissue.VEIN, Tissue.LESION, Tissue.CEMENT)


@dataclass(frozen=True)
class _TissueValue:
    pd: float  # proton density (marrow water + fat = 1)
    ff: float  # fat fraction 0-1
    r2: float  # R2* (1/s) at the study's field strength


@dataclass(frozen=True)
class _LevelValues:
    pdff_pct: float
    r2s_per_s: float
    oedema_drop_pct: float
    rim_drop_pct: float


@dataclass(frozen=True)
class _Lesion:
    centre_local: npt.NDArray[np.float64]
    radius_mm: float
    pdff_pct: float


class _Canvas:
    """Per-sub-sample tissue properties of one slab, painted in order."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.pd = np.zeros(shape, np.float32)
        self.ff = np.zeros(shape, np.float32)
        self.r2 = np.zeros(shape, np.float32)
        self.tissue = np.zeros(shape, np.uint8)
        self.label = np.zeros(shape, np.uint8)

    def paint(
        self,
        sl: tuple[slice, ...],
        mask: npt.NDArray[np.bool_],
        tissue: Tissue,
        value: _TissueValue,
        ff: npt.NDArray | None = None,
        r2: npt.NDArray | None = None,
    ) -> None:
        np.copyto(self.pd[sl], value.pd, where=mask)
        np.copyto(self.ff[sl], value.ff if ff is None else ff, where=mask)
        np.copyto(self.r2[sl], value.r2 if r2 is None else r2, where=mask)
        np.copyto(self.tissue[sl], np.uint8(tissue), where=mask)


# -- tissue values --------------------------------------------------------------------------------


def _draw_level_values(spec: PhantomSpec, rng: np.random.Generator) -> dict[str, _LevelValues]:
    """Per-level marrow truth. All draws happen whatever the options, for stable streams."""
    ff = spec.field_factor
    mean_pdff = rng.uniform(38.0, 60.0)
    base_r2 = rng.uniform(48.0, 72.0) - 0.2 * (mean_pdff - 49.0)
    out: dict[str, _LevelValues] = {}
    for name in VERTEBRAL_LEVELS:
        i = level_index(name)
        pdff = float(np.clip(mean_pdff + 0.8 * (i - 4) + rng.normal(0.0, 1.5), 30.0, 70.0))
        r2 = float(np.clip(base_r2 + rng.normal(0.0, 3.0), 40.0, 80.0)) * ff
        oedema = float(rng.uniform(10.0, 30.0))
        rim = float(rng.uniform(4.0, 8.0))
        given_pdff = (spec.marrow_pdff_pct or {}).get(name)
        given_r2 = (spec.marrow_r2s_per_s or {}).get(name)
        fractured = name in spec.fractured
        if given_pdff is not None:
            pdff = given_pdff
        elif fractured:
            pdff = max(pdff - oedema, 2.0)
        if fractured and given_pdff is not None:
            oedema = 0.0  # the given value is the as-built value
        if given_r2 is not None:
            r2 = given_r2
        elif fractured:
            r2 *= 0.9  # oedema: more water, slightly lower R2*
        out[name] = _LevelValues(pdff, r2, oedema if fractured else 0.0, rim)
    return out


def _draw_dimensions(rng: np.random.Generator) -> dict[str, tuple[float, float, float, float]]:
    dims = {}
    for name, (w, d, h, disc) in an.NOMINAL_BODIES_MM.items():
        j = rng.uniform(-0.03, 0.03, size=3)
        jd = rng.uniform(-0.05, 0.05)
        dims[name] = (w * (1 + j[0]), d * (1 + j[1]), h * (1 + j[2]), disc * (1 + jd))
    return dims


# -- grid -----------------------------------------------------------------------------------------


def _rotation(axis: npt.NDArray[np.float64], angle_deg: float) -> npt.NDArray[np.float64]:
    a = math.radians(angle_deg)
    x, y, z = axis / np.linalg.norm(axis)
    c, s, t = math.cos(a), math.sin(a), 1 - math.cos(a)
    return np.array(
        [
            [t * x * x + c, t * x * y - s * z, t * x * z + s * y],
            [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
            [t * x * z - s * y, t * y * z + s * x, t * z * z + c],
        ]
    )


def _make_grid(
    spec: PhantomSpec, bodies: tuple[an.BodyGeometry, ...], curve: an.SpineCurve
) -> tuple[npt.NDArray[np.float64], tuple[int, int, int]]:
    """IJK-to-RAS and shape (nk, nj, ni) of the acquisition grid."""
    labelled = [b for b in bodies if b.labelled]
    top = max(b.centre_ras[2] + b.height_mm / 2 for b in labelled)
    bottom = min(b.centre_ras[2] - b.height_mm / 2 for b in labelled)
    in_spine = (curve.points_ras[:, 2] <= top) & (curve.points_ras[:, 2] >= bottom)
    x_mid = float(np.mean([b.centre_ras[0] for b in labelled]))
    y_post = float(curve.points_ras[in_spine, 1].min()) - TRUNK_HALF_AP_MM + TRUNK_CENTRE_V_MM
    y_ant = float(curve.points_ras[in_spine, 1].max()) + TRUNK_HALF_AP_MM + TRUNK_CENTRE_V_MM
    sp, thk = spec.in_plane_spacing_mm, spec.slice_thickness_mm
    z_lo, z_hi = bottom - MARGIN_MM, top + MARGIN_MM
    if spec.orientation == "sagittal":
        dirs = np.column_stack([(0.0, -1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)])  # i, j, k
        nj = math.ceil((z_hi - z_lo) / sp) + 1
        nj += nj % 2
        ni = nj
        # +-48 mm about the bodies, widened by their lateral spread (scoliosis)
        spread = max(abs(b.centre_ras[0] - x_mid) for b in labelled)
        nk = math.ceil(2 * (SLAB_HALF_WIDTH_MM + spread) / thk)
        # posterior edge MARGIN_MM behind the skin; anterior as far as the square FOV reaches
        y_c = y_post - MARGIN_MM + (ni - 1) * sp / 2
        centre = np.array([x_mid, y_c, 0.5 * (z_lo + z_hi)])
        tilt_axis = np.array([0.0, 0.0, 1.0])
    else:
        dirs = np.column_stack([(-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0)])
        ni = math.ceil((2 * TRUNK_HALF_WIDTH_MM + 2 * MARGIN_MM) / sp) + 1
        nj = math.ceil((y_ant - y_post + 2 * MARGIN_MM) / sp) + 1
        ni = nj = max(ni, nj) + max(ni, nj) % 2
        nk = math.ceil((top - bottom + 2 * MARGIN_MM) / thk)
        centre = np.array([x_mid, 0.5 * (y_post + y_ant), 0.5 * (top + bottom)])
        tilt_axis = np.array([1.0, 0.0, 0.0])
    if spec.matrix_size is not None:
        nj, ni = spec.matrix_size
        # a small field of view is moved towards the bodies so that it still shows the spine
        half_ap = ((ni if spec.orientation == "sagittal" else nj) - 1) * sp / 2
        slack = max(half_ap - min(half_ap, 45.0), 0.0)
        spine_y = float(np.mean([b.centre_ras[1] for b in labelled]))
        centre[1] = float(np.clip(centre[1], spine_y - slack, spine_y + slack))
    if spec.n_slices is not None:
        nk = int(spec.n_slices)
    dirs = _rotation(tilt_axis, spec.oblique_deg) @ dirs
    spacing = np.array([sp, sp, thk])
    mat = np.eye(4)
    mat[:3, :3] = dirs * spacing[np.newaxis, :]
    half = (np.array([ni, nj, nk], float) - 1) / 2
    mat[:3, 3] = centre - mat[:3, :3] @ half
    return mat, (nk, nj, ni)


def _n_sub(spec: PhantomSpec) -> int:
    if spec.slice_supersampling is not None:
        n = int(spec.slice_supersampling)
    else:
        n = max(1, math.ceil(spec.slice_thickness_mm / 1.0 - 1e-6))
    return n if n % 2 else n + 1


def _points(
    mat: npt.NDArray[np.float64],
    n_sub: int,
    m_range: tuple[int, int],
    j_range: tuple[int, int],
    i_range: tuple[int, int],
) -> tuple[npt.NDArray[np.float32], ...]:
    """RAS x, y, z (float32, shape (m, j, i)) of sub-samples in the given index ranges."""
    m = np.arange(*m_range, dtype=np.float64)
    k = (m + 0.5) / n_sub - 0.5
    j = np.arange(*j_range, dtype=np.float64)
    i = np.arange(*i_range, dtype=np.float64)
    out = []
    for row in range(3):
        a = (mat[row, 2] * k + mat[row, 3])[:, None, None]
        b = (mat[row, 1] * j)[None, :, None]
        c = (mat[row, 0] * i)[None, None, :]
        out.append((a + b + c).astype(np.float32))
    return tuple(out)


def _bbox_sub_index(
    mat: npt.NDArray[np.float64],
    n_sub: int,
    shape_sub: tuple[int, int, int],
    centre: npt.NDArray[np.float64],
    rotation: npt.NDArray[np.float64],
    lo: tuple[float, float, float],
    hi: tuple[float, float, float],
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """Sub-sample index ranges (m, j, i) covering a local box [lo, hi] (mm); None if outside."""
    corners = np.array(
        [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    )
    ras = centre + corners @ rotation  # rotation rows are local axes
    ijk = (np.c_[ras, np.ones(8)] @ np.linalg.inv(mat).T)[:, :3]
    m = (ijk[:, 2] + 0.5) * n_sub - 0.5
    ranges = []
    for values, n in ((m, shape_sub[0]), (ijk[:, 1], shape_sub[1]), (ijk[:, 0], shape_sub[2])):
        a = max(math.floor(values.min()) - 1, 0)
        b = min(math.ceil(values.max()) + 2, n)
        if a >= b:
            return None
        ranges.append((a, b))
    return tuple(ranges)  # type: ignore[return-value]


# -- painting -------------------------------------------------------------------------------------


def _local(
    x: npt.NDArray, y: npt.NDArray, z: npt.NDArray, centre: npt.NDArray, rotation: npt.NDArray
) -> tuple[npt.NDArray, npt.NDArray, npt.NDArray]:
    dx, dy, dz = x - np.float32(centre[0]), y - np.float32(centre[1]), z - np.float32(centre[2])
    r = rotation.astype(np.float32)
    return (
        r[0, 0] * dx + r[0, 1] * dy + r[0, 2] * dz,
        r[1, 0] * dx + r[1, 1] * dy + r[1, 2] * dz,
        r[2, 0] * dx + r[2, 1] * dy + r[2, 2] * dz,
    )


@dataclass(frozen=True)
class _Model:
    """Everything the painters need, fixed before rasterising."""

    spec: PhantomSpec
    curve: an.SpineCurve
    bodies: tuple[an.BodyGeometry, ...]
    values: dict[str, _LevelValues]
    fat: _TissueValue
    fat_thickness_mm: float
    muscle_left: _TissueValue
    muscle_right: _TissueValue
    soft: _TissueValue
    csf: _TissueValue
    disc: _TissueValue
    vein_r2: float
    lesion: _Lesion | None
    body_z: npt.NDArray[np.float64]  # centre z of each body, ascending
    body_depth: npt.NDArray[np.float64]  # matching depth (mm)
    psoas_z: tuple[float, float]  # (z where psoas begins, z where it is full size)
    visceral_fat: _TissueValue
    blood: _TissueValue
    vessel_z: tuple[float, float]  # lower ends of aorta and vena cava


def _paint_global(cv: _Canvas, x: npt.NDArray, y: npt.NDArray, z: npt.NDArray, md: _Model) -> None:
    sl = (slice(None),) * 3
    xc, yc = md.curve.lateral_ap_at_z(z)
    u = x - xc
    v = y - yc
    vt = v - np.float32(TRUNK_CENTRE_V_MM)
    outer = (u / TRUNK_HALF_WIDTH_MM) ** 2 + (vt / TRUNK_HALF_AP_MM) ** 2 <= 1.0
    cv.paint(sl, outer, Tissue.SUBCUTANEOUS_FAT, md.fat)
    t = md.fat_thickness_mm
    inner = (u / (TRUNK_HALF_WIDTH_MM - t)) ** 2 + (vt / (TRUNK_HALF_AP_MM - t)) ** 2 <= 1.0
    cv.paint(sl, inner, Tissue.SOFT_TISSUE, md.soft)
    depth = np.interp(z, md.body_z, md.body_depth).astype(np.float32)
    # retroperitoneal fat, then aorta (left, ends at L4) and vena cava (right, ends at L5)
    retro = (u / 65.0) ** 2 + ((v - 25.0) / 32.0) ** 2 <= 1.0
    cv.paint(sl, retro, Tissue.VISCERAL_FAT, md.visceral_fat)
    v_front = depth / 2
    aorta = ((u + 12.0) ** 2 + (v - v_front - 14.0) ** 2 <= 11.0**2) & (z > md.vessel_z[0])
    ivc = (((u - 24.0) / 13.0) ** 2 + ((v - v_front - 11.0) / 9.0) ** 2 <= 1.0) & (
        z > md.vessel_z[1]
    )
    cv.paint(sl, aorta | ivc, Tissue.BLOOD, md.blood)
    # erector spinae + multifidus, left and right of the spinous processes
    for side, muscle in ((1.0, md.muscle_right), (-1.0, md.muscle_left)):
        m = ((u - side * 30.0) / 26.0) ** 2 + ((v + 57.0) / 24.0) ** 2 <= 1.0
        cv.paint(sl, m & inner, Tissue.MUSCLE, muscle)
    # psoas: grows from its origin (T12/L1) to the sacrum
    z0, z1 = md.psoas_z
    frac = np.clip((z0 - z) / max(z0 - z1, 1.0), 0.0, 1.0)
    rad = 4.0 + 14.0 * frac
    for side, muscle in ((1.0, md.muscle_right), (-1.0, md.muscle_left)):
        m = ((u - side * (22.0 + rad)) ** 2 + (v + 2.0) ** 2 <= rad**2) & (z < z0)
        cv.paint(sl, m, Tissue.MUSCLE, muscle)
    vcc = -(depth / 2 + an.CANAL_GAP_MM + an.CANAL_AP_MM / 2)
    canal = (u / (an.CANAL_WIDTH_MM / 2)) ** 2 + ((v - vcc) / (an.CANAL_AP_MM / 2)) ** 2 <= 1.0
    cv.paint(sl, canal, Tissue.CSF, md.csf)


def _paint_disc(
    cv: _Canvas,
    sl: tuple[slice, ...],
    x: npt.NDArray,
    y: npt.NDArray,
    z: npt.NDArray,
    upper: an.BodyGeometry,
    lower: an.BodyGeometry,
    md: _Model,
) -> None:
    centre, rot, a, b = _disc_frame(upper, lower)
    u, v, _ = _local(x, y, z, centre, rot)
    _, _, wu = _local(x, y, z, upper.centre_ras, upper.rotation)
    _, _, wl = _local(x, y, z, lower.centre_ras, lower.rotation)
    inside = (
        ((u / a) ** 2 + (v / b) ** 2 <= 1.0)
        & (wu <= -upper.height_mm / 2 + 1.0)
        & (wl >= lower.height_mm / 2 - 1.0)
    )
    cv.paint(sl, inside, Tissue.DISC, md.disc)


def _disc_frame(
    upper: an.BodyGeometry, lower: an.BodyGeometry
) -> tuple[npt.NDArray, npt.NDArray, float, float]:
    p_up = upper.centre_ras - upper.superior * upper.height_mm / 2
    p_lo = lower.centre_ras + lower.superior * lower.height_mm / 2
    centre = 0.5 * (p_up + p_lo)
    right, ant, sup = an.local_axes(-(upper.superior + lower.superior))
    a = 0.25 * (upper.width_mm + lower.width_mm) + 0.5
    b = 0.25 * (upper.depth_mm + lower.depth_mm) + 0.5
    return centre, np.stack([right, ant, sup]), a, b


def _posterior_extent(body: an.BodyGeometry) -> tuple[float, float, float, float]:
    """(half canal width, posterior canal wall v, spinous length, transverse length) in mm."""
    lumbar = body.name.startswith(("L", "S"))
    b = body.depth_mm / 2
    v_cp = -(b + an.CANAL_GAP_MM + an.CANAL_AP_MM)
    return an.CANAL_WIDTH_MM / 2, v_cp, 30.0 if lumbar else 26.0, 18.0 if lumbar else 12.0


def _paint_vertebra(
    cv: _Canvas,
    sl: tuple[slice, ...],
    x: npt.NDArray,
    y: npt.NDArray,
    z: npt.NDArray,
    body: an.BodyGeometry,
    md: _Model,
) -> None:
    u, v, w = _local(x, y, z, body.centre_ras, body.rotation)
    a, b, h = body.width_mm / 2, body.depth_mm / 2, body.height_mm
    ref = body.name if body.labelled else ("T10" if body.name == "T9" else "S1")
    lv = md.values[ref]
    marrow_ff, marrow_r2 = lv.pdff_pct / 100.0, lv.r2s_per_s
    bone = _TissueValue(0.85, min(marrow_ff + 0.08, 0.95), marrow_r2 * 1.1)
    if body.name != "S2":
        cw, v_cp, sp_len, tp_len = _posterior_extent(body)
        wp = w - np.float32(0.1 * h)
        canal = (u / cw) ** 2 + ((v - (v_cp + an.CANAL_AP_MM / 2)) / (an.CANAL_AP_MM / 2)) ** 2 <= 1
        au = np.abs(u)
        pedicle = (((au - (cw + 4.0)) / 4.5) ** 2 + (wp / (0.3 * h)) ** 2 <= 1) & (
            (v <= -0.5 * b) & (v >= v_cp - 3.0)
        )
        lamina = (au <= cw + 6.0) & (v <= v_cp) & (v >= v_cp - 7.0) & (np.abs(wp) <= 0.42 * h)
        slope = 0.1 if body.name.startswith(("L", "S")) else 0.6
        w_sp = wp + np.float32(slope) * (v_cp - 5.0 - v)
        spinous = (
            (au <= 3.5)
            & (v <= v_cp - 5.0)
            & (v >= v_cp - 7.0 - sp_len)
            & (np.abs(w_sp) <= 0.35 * h)
        )
        v_tp = v_cp + 0.3 * an.CANAL_AP_MM
        transverse = (
            (au >= cw + 4.0)
            & (au <= cw + 6.0 + tp_len)
            & (np.abs(v - v_tp) <= 4.0)
            & (np.abs(wp) <= 5.0)
        )
        post = (pedicle | lamina | spinous | transverse) & ~canal
        cv.paint(sl, post, Tissue.POSTERIOR_ELEMENT, bone)
    d = an.body_depth_field(u, v, w, a, b, h)
    inside = d >= 0.0
    if not np.any(inside):
        return
    interior = Tissue.MARROW_CORE if body.labelled else Tissue.OTHER_VERTEBRA
    core_v = _TissueValue(1.0, marrow_ff, marrow_r2)
    cv.paint(sl, inside & (d >= an.CORE_DEPTH_MM), interior, core_v)
    rim = inside & (d >= an.CORTEX_MM) & (d < an.CORE_DEPTH_MM)
    closeness = np.clip(1.0 - (d - an.CORTEX_MM) / an.RIM_MM, 0.0, 1.0)
    rim_ff = np.maximum(marrow_ff - lv.rim_drop_pct / 100.0 * closeness, 0.0)
    rim_r2 = marrow_r2 * (1.0 + 0.2 * closeness)
    rim_tissue = Tissue.MARROW_RIM if body.labelled else Tissue.OTHER_VERTEBRA
    cv.paint(sl, rim, rim_tissue, core_v, ff=rim_ff, r2=rim_r2)
    cortex = inside & (d < an.CORTEX_MM)
    cv.paint(sl, cortex, Tissue.CORTEX, _TissueValue(0.2, 0.1, 250.0 * md.spec.field_factor))
    # basivertebral vein: posterior, mid-height, entering through the posterior wall
    vein = inside & (
        (u / 5.0) ** 2 + ((v - np.float32(-b + 5.0)) / 6.0) ** 2 + (w / 2.5) ** 2 <= 1.0
    )
    cv.paint(sl, vein, Tissue.VEIN, _TissueValue(0.9, 0.02, md.vein_r2))
    if not body.labelled:
        return
    if md.lesion is not None and md.spec.lesion_level == body.name:
        c = md.lesion.centre_local
        les = inside & (
            (u - np.float32(c[0])) ** 2 + (v - np.float32(c[1])) ** 2 + (w - np.float32(c[2])) ** 2
            <= md.lesion.radius_mm**2
        )
        cv.paint(
            sl, les, Tissue.LESION, _TissueValue(0.95, md.lesion.pdff_pct / 100, 0.5 * marrow_r2)
        )
    if body.name in md.spec.cemented:
        cem = inside & (
            (u / (0.55 * a)) ** 2
            + ((v - np.float32(0.15 * b)) / (0.6 * b)) ** 2
            + (w / (0.38 * h)) ** 2
            <= 1.0
        )
        cv.paint(sl, cem, Tissue.CEMENT, _TissueValue(0.003, 0.5, 600.0 * md.spec.field_factor))
    cv.label[sl][inside] = level_label(body.name)


# -- main -----------------------------------------------------------------------------------------


def _build_model(spec: PhantomSpec) -> _Model:
    streams = np.random.SeedSequence(int(spec.seed)).spawn(4)
    anat_rng, tissue_rng = np.random.default_rng(streams[0]), np.random.default_rng(streams[1])
    dims = _draw_dimensions(anat_rng)
    curve, bodies = an.build_spine(
        dims, dict(spec.fractured), spec.lordosis_deg, spec.scoliosis_deg
    )
    values = _draw_level_values(spec, tissue_rng)
    ff = spec.field_factor
    fat = _TissueValue(0.95, float(tissue_rng.uniform(0.92, 0.96)), 25.0 * ff)
    fat_thickness = float(anat_rng.uniform(12.0, 28.0))
    muscle_ff = tissue_rng.uniform(0.03, 0.12, size=2)
    lesion_draw = (
        anat_rng.uniform(-1, 1, size=3),
        float(anat_rng.uniform(4.0, 6.0)),
        float(tissue_rng.uniform(3.0, 12.0)),
    )
    lesion = None
    if spec.lesion_level is not None:
        body = next(b for b in bodies if b.name == spec.lesion_level)
        r = lesion_draw[1]
        a, b, h = body.width_mm / 2, body.depth_mm / 2, body.height_mm / 2
        margin = an.CORE_DEPTH_MM + 1.0 + r
        # stay clear of the cortex and of the vein (posterior 11 mm)
        v_lo, v_hi = -b + 12.0 + r, b - margin
        centre = np.array(
            [
                lesion_draw[0][0] * max(0.5 * (a - margin), 0.0),
                0.5 * (v_lo + v_hi) + lesion_draw[0][1] * max(0.5 * (v_hi - v_lo), 0.0),
                lesion_draw[0][2] * max(h - margin, 0.0),
            ]
        )
        lesion = _Lesion(centre, r, lesion_draw[2])
    order = sorted(bodies, key=lambda bd: bd.centre_ras[2])
    psoas_top = next(bd for bd in bodies if bd.name == "T12").centre_ras[2]
    psoas_full = next(bd for bd in bodies if bd.name == "L4").centre_ras[2]
    return _Model(
        spec=spec,
        curve=curve,
        bodies=bodies,
        values=values,
        fat=fat,
        fat_thickness_mm=fat_thickness,
        muscle_left=_TissueValue(0.8, float(muscle_ff[0]), 28.0 * ff),
        muscle_right=_TissueValue(0.8, float(muscle_ff[1]), 28.0 * ff),
        soft=_TissueValue(0.75, 0.05, 30.0 * ff),
        csf=_TissueValue(1.0, 0.0, 4.0 * ff),
        disc=_TissueValue(0.85, 0.01, 15.0 * ff),
        vein_r2=25.0 * ff,
        lesion=lesion,
        body_z=np.array([bd.centre_ras[2] for bd in order]),
        body_depth=np.array([bd.depth_mm for bd in order]),
        psoas_z=(float(psoas_top), float(psoas_full)),
        visceral_fat=_TissueValue(0.95, float(tissue_rng.uniform(0.85, 0.92)), 25.0 * ff),
        blood=_TissueValue(0.9, 0.0, 15.0 * ff),
        vessel_z=(
            float(next(bd for bd in bodies if bd.name == "L4").centre_ras[2]),
            float(next(bd for bd in bodies if bd.name == "L5").centre_ras[2]),
        ),
    )


def _rasterise(
    md: _Model, mat: npt.NDArray[np.float64], shape: tuple[int, int, int], n_sub: int
) -> dict[str, npt.NDArray]:
    nk, nj, ni = shape
    shape_sub = (nk * n_sub, nj, ni)
    water = np.zeros(shape, np.float32)
    fat = np.zeros(shape, np.float32)
    r2 = np.zeros(shape, np.float32)
    tissue = np.zeros(shape, np.uint8)
    label = np.zeros(shape, np.int16)
    by_name = {bd.name: bd for bd in md.bodies}
    boxes: list[tuple[str, object, tuple]] = []
    for upper, lower in zip(md.bodies[:-1], md.bodies[1:], strict=True):
        centre, rot, a, b = _disc_frame(upper, lower)
        gap = float(np.linalg.norm(upper.centre_ras - lower.centre_ras))
        gap -= (upper.height_mm + lower.height_mm) / 2
        box = _bbox_sub_index(
            mat,
            n_sub,
            shape_sub,
            centre,
            rot,
            (-a - 2, -b - 2, -gap / 2 - 6),
            (a + 2, b + 2, gap / 2 + 6),
        )
        if box is not None:
            boxes.append(("disc", (upper, lower), box))
    for bd in md.bodies:
        cw, v_cp, sp_len, tp_len = _posterior_extent(bd)
        half_w = max(bd.width_mm / 2, cw + 6.0 + tp_len) + 2.0
        lo = (-half_w, v_cp - 9.0 - sp_len, -bd.height_mm / 2 - 25.0)
        hi = (half_w, bd.depth_mm / 2 + 2.0, bd.height_mm / 2 + 2.0)
        box = _bbox_sub_index(mat, n_sub, shape_sub, bd.centre_ras, bd.rotation, lo, hi)
        if box is not None:
            boxes.append(("body", bd, box))
    del by_name
    for k0 in range(0, nk, SLAB_SLICES):
        k1 = min(k0 + SLAB_SLICES, nk)
        m0, m1 = k0 * n_sub, k1 * n_sub
        cv = _Canvas((m1 - m0, nj, ni))
        x, y, z = _points(mat, n_sub, (m0, m1), (0, nj), (0, ni))
        _paint_global(cv, x, y, z, md)
        for kind, obj, ((a0, a1), (j0, j1), (i0, i1)) in boxes:
            a0, a1 = max(a0, m0), min(a1, m1)
            if a0 >= a1:
                continue
            sl = (slice(a0 - m0, a1 - m0), slice(j0, j1), slice(i0, i1))
            xs, ys, zs = x[sl], y[sl], z[sl]
            if kind == "disc":
                _paint_disc(cv, sl, xs, ys, zs, obj[0], obj[1], md)  # type: ignore[index]
            else:
                _paint_vertebra(cv, sl, xs, ys, zs, obj, md)  # type: ignore[arg-type]
        sub = (k1 - k0, n_sub, nj, ni)
        pd = cv.pd.reshape(sub)
        f = pd * cv.ff.reshape(sub)
        water[k0:k1] = (pd - f).mean(axis=1)
        fat[k0:k1] = f.mean(axis=1)
        pd_sum = pd.sum(axis=1)
        r2w = (pd * cv.r2.reshape(sub)).sum(axis=1)
        r2[k0:k1] = np.where(pd_sum > 0, r2w / np.maximum(pd_sum, 1e-12), 0.0)
        sub_tissue = cv.tissue.reshape(sub)
        tissue[k0:k1] = sub_tissue[:, n_sub // 2]
        if n_sub > 1:
            # core marrow means the whole voxel is core marrow; partly core voxels are rim
            part_core = (tissue[k0:k1] == Tissue.MARROW_CORE) & (
                sub_tissue != Tissue.MARROW_CORE
            ).any(axis=1)
            np.copyto(tissue[k0:k1], np.uint8(Tissue.MARROW_RIM), where=part_core)
            # voxels touched by a vein, lesion or cement are marked so, even off-centre
            for cls in MARKED_IF_TOUCHED:
                np.copyto(tissue[k0:k1], np.uint8(cls), where=(sub_tissue == cls).any(axis=1))
        lab = cv.label.reshape(sub)
        top = lab.max(axis=1)
        count = (lab == top[:, None]).sum(axis=1)
        label[k0:k1] = np.where(2 * count > n_sub, top, 0)
    return {"water": water, "fat": fat, "r2s": r2, "tissue": tissue, "label": label}


def generate_phantom(spec: PhantomSpec | None = None) -> PhantomStudy:
    """Build the synthetic IDEAL-IQ study described by ``spec`` (deterministic per seed).

    Returns the study (maps ``water``, ``fat``, ``in_phase``, ``out_phase`` in signal units,
    ``pdff`` in percent, ``r2s`` in 1/s, all on one grid; provenance vendor "synthetic") and
    the truth (body label map, tissue map, per-level values).
    """
    spec = PhantomSpec() if spec is None else spec
    md = _build_model(spec)
    mat, shape = _make_grid(spec, md.bodies, md.curve)
    n_sub = _n_sub(spec)
    raster = _rasterise(md, mat, shape, n_sub)
    streams = np.random.SeedSequence(int(spec.seed)).spawn(4)
    bias_rng, noise_rng = np.random.default_rng(streams[2]), np.random.default_rng(streams[3])
    bias: npt.NDArray | np.float32 = np.float32(1.0)
    if spec.bias_field > 0:
        nk, nj, ni = shape
        k, j, i = np.meshgrid(
            np.arange(nk, dtype=np.float32),
            np.arange(nj, dtype=np.float32),
            np.arange(ni, dtype=np.float32),
            indexing="ij",
            sparse=True,
        )
        xyz = [mat[r, 0] * i + mat[r, 1] * j + mat[r, 2] * k + mat[r, 3] for r in range(3)]
        bias = make_bias_field(*xyz, amplitude=spec.bias_field, rng=bias_rng)
    maps = synthesise_maps(
        raster["water"],
        raster["fat"],
        raster["r2s"],
        spec.field_strength_t,
        bias,
        spec.snr,
        noise_rng,
    )
    volumes = {kind: Volume(arr, mat) for kind, arr in maps.items()}
    tes = echo_times_ms(spec.field_strength_t)
    noise = "noiseless" if spec.snr is None else f"Rician noise SNR {spec.snr:g}"
    series = {
        kind: SeriesProvenance(
            kind=kind,
            series_description=f"synthetic {kind}",
            source=f"RefractureRiskLib.phantom seed {spec.seed}",
            classified_by="generated by the phantom",
            scaling=(f"phantom {noise}",),
        )
        for kind in volumes
    }
    study = Study(
        maps=volumes,
        provenance=StudyProvenance(
            vendor="synthetic",
            manufacturer_model="RefractureRisk phantom",
            field_strength_t=float(spec.field_strength_t),
            echo_times_ms=tes,
            series=series,
        ),
    )
    labels = Volume(raster["label"], mat)
    voxel_ml = labels.voxel_volume_ml
    levels = []
    for bd in md.bodies:
        if not bd.labelled:
            continue
        lv = md.values[bd.name]
        lab = level_label(bd.name)
        lesion_here = md.lesion is not None and spec.lesion_level == bd.name
        lesion_centre = None
        if lesion_here and md.lesion is not None:
            lesion_centre = tuple(
                float(c) for c in bd.centre_ras + md.lesion.centre_local @ bd.rotation
            )
        levels.append(
            PhantomLevel(
                level=bd.name,
                label=lab,
                marrow_pdff_pct=float(lv.pdff_pct),
                marrow_r2s_per_s=float(lv.r2s_per_s),
                height_mm=float(bd.height_mm),
                width_mm=float(bd.width_mm),
                depth_mm=float(bd.depth_mm),
                body_volume_ml=float(np.count_nonzero(raster["label"] == lab) * voxel_ml),
                centre_ras=tuple(float(c) for c in bd.centre_ras),  # type: ignore[arg-type]
                fractured=bd.name in spec.fractured,
                height_loss_frac=float(spec.fractured.get(bd.name, 0.0)),
                cemented=bd.name in spec.cemented,
                lesion=lesion_here,
                analytic_volume_ml=an.body_volume_mm3(bd.width_mm, bd.depth_mm, bd.height_mm)
                / 1000.0,
                nominal_height_mm=float(bd.nominal_height_mm),
                oedema_pdff_drop_pct=float(lv.oedema_drop_pct),
                rim_pdff_drop_pct=float(lv.rim_drop_pct),
                superior_ras=tuple(float(c) for c in bd.superior),  # type: ignore[arg-type]
                anterior_ras=tuple(float(c) for c in bd.anterior),  # type: ignore[arg-type]
                lesion_centre_ras=lesion_centre,  # type: ignore[arg-type]
                lesion_radius_mm=float(md.lesion.radius_mm) if lesion_here and md.lesion else 0.0,
            )
        )
    truth = PhantomTruth(
        body_labels=labels, levels=tuple(levels), tissue=Volume(raster["tissue"], mat)
    )
    return PhantomStudy(spec=spec, study=study, truth=truth)
