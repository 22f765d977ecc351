"""Rasterise the phantom anatomy onto slice sub-samples and average them into voxels.

Each sub-sample gets a tissue (proton density, fat fraction, R2*) by painting structures in
order, later ones over earlier ones:

1. global structures, in a frame that follows the spine curve (u = x - curve x(z), v = y -
   curve y(z)): trunk outline with subcutaneous fat, abdominal soft tissue, retroperitoneal fat,
   aorta and vena cava, erector spinae + multifidus (left/right), psoas, spinal canal (CSF);
2. discs, between the end plates of adjacent bodies;
3. each vertebra in its own frame (u right, v anterior, w superior): posterior elements
   (pedicles, laminae, spinous and transverse processes, sparing the canal), then the body:
   core marrow (>= 3 mm deep), rim marrow whose PDFF falls towards the cortex, cortex, the
   basivertebral vein, and for labelled levels a lesion and cement.

Vertebrae and discs are evaluated on their bounding boxes only; work proceeds in slabs of
slices to bound memory. A voxel's water and fat are the means of its sub-samples (so thick
slices show partial volume), its R2* the signal-weighted mean, its body label the level holding
more than half of its sub-samples. What is painted (sizes, curve, tissue values, lesion) is drawn
from the seed beforehand, in :mod:`.phantom_model`.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.levels import level_label
from RefractureRiskLib.phantom import anatomy as an
from RefractureRiskLib.phantom import tissues as ts
from RefractureRiskLib.phantom.grid import box_index_ranges, subsample_points
from RefractureRiskLib.phantom.phantom_model import PhantomModel
from RefractureRiskLib.phantom.tissues import TissueValue
from RefractureRiskLib.phantom.truth import Tissue

SLAB_SLICES = 8  # slices processed together


class Canvas:
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
        value: TissueValue,
        ff: npt.NDArray | None = None,
        r2: npt.NDArray | None = None,
    ) -> None:
        """Set the sub-samples ``mask`` of the box ``sl`` to ``tissue`` with ``value``."""
        np.copyto(self.pd[sl], value.pd, where=mask)
        np.copyto(self.ff[sl], value.ff if ff is None else ff, where=mask)
        np.copyto(self.r2[sl], value.r2s_per_s if r2 is None else r2, where=mask)
        np.copyto(self.tissue[sl], np.uint8(tissue), where=mask)


def _local(
    x: npt.NDArray, y: npt.NDArray, z: npt.NDArray, centre: npt.NDArray, rotation: npt.NDArray
) -> tuple[npt.NDArray, npt.NDArray, npt.NDArray]:
    """Coordinates along the rows of ``rotation`` (mm) relative to ``centre``."""
    dx, dy, dz = x - np.float32(centre[0]), y - np.float32(centre[1]), z - np.float32(centre[2])
    r = rotation.astype(np.float32)
    return (
        r[0, 0] * dx + r[0, 1] * dy + r[0, 2] * dz,
        r[1, 0] * dx + r[1, 1] * dy + r[1, 2] * dz,
        r[2, 0] * dx + r[2, 1] * dy + r[2, 2] * dz,
    )


def _ellipse(
    u: npt.NDArray, v: npt.NDArray, cu: float, cv: float, au: float, av: float
) -> npt.NDArray[np.bool_]:
    """Inside the ellipse centred (cu, cv) with semi-axes (au, av), all in mm."""
    return ((u - np.float32(cu)) / np.float32(au)) ** 2 + (
        (v - np.float32(cv)) / np.float32(av)
    ) ** 2 <= 1.0


def paint_global(
    cv: Canvas, x: npt.NDArray, y: npt.NDArray, z: npt.NDArray, md: PhantomModel
) -> None:
    """Trunk, fat, vessels, muscles and canal over a whole slab."""
    sl = (slice(None),) * 3
    row = md.heights.index(z)
    u, v = x - md.heights.x_mm[row], y - md.heights.y_mm[row]
    depth = md.heights.depth_mm[row]
    trunk_a, trunk_b, trunk_v = an.TRUNK_HALF_WIDTH_MM, an.TRUNK_HALF_AP_MM, an.TRUNK_CENTRE_V_MM
    cv.paint(
        sl,
        _ellipse(u, v, 0.0, trunk_v, trunk_a, trunk_b),
        Tissue.SUBCUTANEOUS_FAT,
        md.subcutaneous_fat,
    )
    t = md.fat_thickness_mm
    inner = _ellipse(u, v, 0.0, trunk_v, trunk_a - t, trunk_b - t)
    cv.paint(sl, inner, Tissue.SOFT_TISSUE, md.tissue[Tissue.SOFT_TISSUE])
    cv.paint(sl, _ellipse(u, v, 0.0, 25.0, 65.0, 32.0), Tissue.VISCERAL_FAT, md.visceral_fat)
    # aorta (left, to L4) and inferior vena cava (right, to L5) in front of the bodies
    v_front = depth / 2
    aorta = ((u + 12.0) ** 2 + (v - v_front - 14.0) ** 2 <= 11.0**2) & (z > md.vessel_z[0])
    ivc = (((u - 24.0) / 13.0) ** 2 + ((v - v_front - 11.0) / 9.0) ** 2 <= 1.0) & (
        z > md.vessel_z[1]
    )
    cv.paint(sl, aorta | ivc, Tissue.BLOOD, md.tissue[Tissue.BLOOD])
    # erector spinae + multifidus, left and right of the spinous processes
    for side, muscle in ((1.0, md.muscle_right), (-1.0, md.muscle_left)):
        cv.paint(sl, _ellipse(u, v, 30.0 * side, -57.0, 26.0, 24.0) & inner, Tissue.MUSCLE, muscle)
    # psoas: grows from its origin at T12 to full size at L4
    z0, z1 = md.psoas_z
    rad = 4.0 + 14.0 * np.clip((z0 - z) / max(z0 - z1, 1.0), 0.0, 1.0)
    for side, muscle in ((1.0, md.muscle_right), (-1.0, md.muscle_left)):
        psoas = ((u - side * (22.0 + rad)) ** 2 + (v + 2.0) ** 2 <= rad**2) & (z < z0)
        cv.paint(sl, psoas, Tissue.MUSCLE, muscle)
    v_canal = -(depth / 2 + an.CANAL_GAP_MM + an.CANAL_AP_MM / 2)
    canal = (u / (an.CANAL_WIDTH_MM / 2)) ** 2 + ((v - v_canal) / (an.CANAL_AP_MM / 2)) ** 2 <= 1
    cv.paint(sl, canal, Tissue.CSF, md.tissue[Tissue.CSF])


def disc_frame(
    upper: an.BodyGeometry, lower: an.BodyGeometry
) -> tuple[npt.NDArray, npt.NDArray, float, float]:
    """Centre (RAS), axes (rows) and semi-axes (mm) of the disc between two bodies."""
    p_up = upper.centre_ras - upper.superior * upper.height_mm / 2
    p_lo = lower.centre_ras + lower.superior * lower.height_mm / 2
    right, ant, sup = an.local_axes(-(upper.superior + lower.superior))
    a = 0.25 * (upper.width_mm + lower.width_mm) + 0.5
    b = 0.25 * (upper.depth_mm + lower.depth_mm) + 0.5
    return 0.5 * (p_up + p_lo), np.stack([right, ant, sup]), a, b


def paint_disc(
    cv: Canvas,
    sl: tuple[slice, ...],
    xyz: tuple[npt.NDArray, npt.NDArray, npt.NDArray],
    upper: an.BodyGeometry,
    lower: an.BodyGeometry,
    md: PhantomModel,
) -> None:
    """The disc fills the space between the end plates (1 mm into each body, which repaints)."""
    centre, rot, a, b = disc_frame(upper, lower)
    u, v, _ = _local(*xyz, centre, rot)
    u_up, v_up, w_up = _local(*xyz, upper.centre_ras, upper.rotation)
    u_lo, v_lo, w_lo = _local(*xyz, lower.centre_ras, lower.rotation)
    inside = (
        _ellipse(u, v, 0.0, 0.0, a, b)
        & (w_up <= -upper.half_height(u_up, v_up)[0] + 1.0)
        & (w_lo >= lower.half_height(u_lo, v_lo)[0] - 1.0)
    )
    cv.paint(sl, inside, Tissue.DISC, md.tissue[Tissue.DISC])


def posterior_extent(body: an.BodyGeometry) -> tuple[float, float, float, float]:
    """(half canal width, v of the canal's posterior wall, spinous length, transverse length)."""
    lumbar = body.name.startswith(("L", "S"))
    v_back = -(body.depth_mm / 2 + an.CANAL_GAP_MM + an.CANAL_AP_MM)
    return an.CANAL_WIDTH_MM / 2, v_back, 30.0 if lumbar else 26.0, 18.0 if lumbar else 12.0


def _posterior_elements(
    u: npt.NDArray, v: npt.NDArray, w: npt.NDArray, body: an.BodyGeometry
) -> npt.NDArray[np.bool_]:
    cw, v_cp, sp_len, tp_len = posterior_extent(body)
    b, h = body.depth_mm / 2, body.height_mm
    wp = w - np.float32(0.1 * h)  # the arch sits on the upper part of the body
    au = np.abs(u)
    canal = _ellipse(u, v, 0.0, v_cp + an.CANAL_AP_MM / 2, cw, an.CANAL_AP_MM / 2)
    pedicle = (((au - (cw + 4.0)) / 4.5) ** 2 + (wp / (0.3 * h)) ** 2 <= 1) & (
        (v <= -0.5 * b) & (v >= v_cp - 3.0)
    )
    lamina = (au <= cw + 6.0) & (v <= v_cp) & (v >= v_cp - 7.0) & (np.abs(wp) <= 0.42 * h)
    # thoracic spinous processes slope steeply downwards, lumbar ones hardly
    slope = np.float32(0.1 if body.name.startswith(("L", "S")) else 0.6)
    w_sp = wp + slope * (v_cp - 5.0 - v)
    spinous = (au <= 3.5) & (v <= v_cp - 5.0) & (v >= v_cp - 7.0 - sp_len)
    spinous &= np.abs(w_sp) <= 0.35 * h
    v_tp = v_cp + 0.3 * an.CANAL_AP_MM
    transverse = (au >= cw + 4.0) & (au <= cw + 6.0 + tp_len) & (np.abs(v - v_tp) <= 4.0)
    transverse &= np.abs(wp) <= 5.0
    return (pedicle | lamina | spinous | transverse) & ~canal


def paint_vertebra(
    cv: Canvas,
    sl: tuple[slice, ...],
    xyz: tuple[npt.NDArray, npt.NDArray, npt.NDArray],
    body: an.BodyGeometry,
    md: PhantomModel,
) -> None:
    """Posterior elements, then the body (core, rim, cortex, vein, lesion, cement) and label."""
    u, v, w = _local(*xyz, body.centre_ras, body.rotation)
    a, b, h = body.width_mm / 2, body.depth_mm / 2, body.height_mm
    ref = body.name if body.labelled else ("T10" if body.name == "T9" else "S1")
    lv = md.values[ref]
    marrow = TissueValue(1.0, lv.pdff_pct / 100.0, lv.r2s_per_s)
    if body.name not in ("S2", "S3"):  # the sacral arch below S1 is left out
        bone = TissueValue(
            ts.POSTERIOR_PD,
            min(marrow.ff + ts.POSTERIOR_FF_OFFSET, ts.POSTERIOR_FF_MAX),
            marrow.r2s_per_s * ts.POSTERIOR_R2S_FACTOR,
        )
        cv.paint(sl, _posterior_elements(u, v, w, body), Tissue.POSTERIOR_ELEMENT, bone)
    d = an.body_depth_field(u, v, w, a, b, *body.half_height(u, v))
    inside = d >= 0.0
    if not np.any(inside):
        return
    ff = np.full(u.shape, marrow.ff, np.float32)
    texture = md.textures[body.name]
    if texture.sd_pct > 0:
        ff[inside] += texture.fat_fraction_change(u[inside], v[inside], w[inside])
        np.clip(ff, 0.005, 0.995, out=ff)
    core = Tissue.MARROW_CORE if body.labelled else Tissue.OTHER_VERTEBRA
    cv.paint(sl, inside & (d >= an.CORE_DEPTH_MM), core, marrow, ff=ff)
    rim = inside & (d >= an.CORTEX_MM) & (d < an.CORE_DEPTH_MM)
    closeness = np.clip(1.0 - (d - an.CORTEX_MM) / an.RIM_MM, 0.0, 1.0)
    rim_ff = np.maximum(ff - lv.rim_drop_pct / 100.0 * closeness, 0.0)
    rim_r2 = marrow.r2s_per_s * (1.0 + ts.RIM_R2S_RISE * closeness)
    rim_tissue = Tissue.MARROW_RIM if body.labelled else Tissue.OTHER_VERTEBRA
    cv.paint(sl, rim, rim_tissue, marrow, ff=rim_ff, r2=rim_r2)
    cv.paint(sl, inside & (d < an.CORTEX_MM), Tissue.CORTEX, md.tissue[Tissue.CORTEX])
    # basivertebral vein: posterior, mid-height, entering through the posterior wall
    vein = inside & ((u / 5.0) ** 2 + ((v + np.float32(b - 5.0)) / 6.0) ** 2 + (w / 2.5) ** 2 <= 1)
    cv.paint(sl, vein, Tissue.VEIN, md.tissue[Tissue.VEIN])
    if not body.labelled:
        return
    if md.lesion is not None and md.spec.lesion_level == body.name:
        c = md.lesion.centre_local.astype(np.float32)
        r2 = (u - c[0]) ** 2 + (v - c[1]) ** 2 + (w - c[2]) ** 2
        value = TissueValue(
            ts.LESION_PD, md.lesion.pdff_pct / 100, ts.LESION_R2S_FACTOR * marrow.r2s_per_s
        )
        cv.paint(sl, inside & (r2 <= md.lesion.radius_mm**2), Tissue.LESION, value)
    if body.name in md.spec.cemented:
        # about a sixth of the body, anterior two thirds, as after vertebroplasty
        cement = (u / (0.55 * a)) ** 2 + ((v - np.float32(0.15 * b)) / (0.6 * b)) ** 2
        cement = inside & (cement + (w / (0.38 * h)) ** 2 <= 1.0)
        cv.paint(sl, cement, Tissue.CEMENT, md.tissue[Tissue.CEMENT])
    cv.label[sl][inside] = level_label(body.name)


def _boxes(
    md: PhantomModel, mat: npt.NDArray[np.float64], n_sub: int, shape_sub: tuple[int, int, int]
) -> list[tuple[tuple, tuple]]:
    """(what, index ranges) of every disc and vertebra that touches the grid, in paint order."""
    boxes: list[tuple[tuple, tuple]] = []
    for upper, lower in itertools.pairwise(md.bodies):
        centre, rot, a, b = disc_frame(upper, lower)
        gap = float(np.linalg.norm(upper.centre_ras - lower.centre_ras))
        gap -= (upper.height_mm + lower.height_mm) / 2
        lo, hi = (-a - 2, -b - 2, -gap / 2 - 6), (a + 2, b + 2, gap / 2 + 6)
        box = box_index_ranges(mat, n_sub, shape_sub, centre, rot, lo, hi)
        if box is not None:
            boxes.append((("disc", upper, lower), box))
    for bd in md.bodies:
        cw, v_cp, sp_len, tp_len = posterior_extent(bd)
        half_w = max(bd.width_mm / 2, cw + 6.0 + tp_len) + 2.0
        lo = (-half_w, v_cp - 9.0 - sp_len, -bd.nominal_height_mm / 2 - 25.0)
        hi = (half_w, bd.depth_mm / 2 + 2.0, bd.nominal_height_mm / 2 + 2.0)
        box = box_index_ranges(mat, n_sub, shape_sub, bd.centre_ras, bd.rotation, lo, hi)
        if box is not None:
            boxes.append((("body", bd), box))
    return boxes


def rasterise(
    md: PhantomModel, mat: npt.NDArray[np.float64], shape: tuple[int, int, int], n_sub: int
) -> dict[str, npt.NDArray]:
    """Voxel arrays on the grid ``mat`` / ``shape``: ``water``, ``fat`` (proton densities),
    ``r2s`` (1/s), ``tissue`` (uint8 :class:`Tissue` at the voxel centre), ``label`` (int16 body
    labels) and ``core`` (uint8, 1 where every sub-sample is core marrow)."""
    nk, nj, ni = shape
    boxes = _boxes(md, mat, n_sub, (nk * n_sub, nj, ni))
    water = np.zeros(shape, np.float32)
    fat = np.zeros(shape, np.float32)
    r2 = np.zeros(shape, np.float32)
    tissue = np.zeros(shape, np.uint8)
    label = np.zeros(shape, np.int16)
    core = np.zeros(shape, np.uint8)
    for k0 in range(0, nk, SLAB_SLICES):
        k1 = min(k0 + SLAB_SLICES, nk)
        m0, m1 = k0 * n_sub, k1 * n_sub
        cv = Canvas((m1 - m0, nj, ni))
        x, y, z = subsample_points(mat, n_sub, (m0, m1), (0, nj), (0, ni))
        paint_global(cv, x, y, z, md)
        for what, ((a0, a1), (j0, j1), (i0, i1)) in boxes:
            a0, a1 = max(a0, m0), min(a1, m1)
            if a0 >= a1:
                continue
            sl = (slice(a0 - m0, a1 - m0), slice(j0, j1), slice(i0, i1))
            xyz = (x[sl], y[sl], z[sl])
            if what[0] == "disc":
                paint_disc(cv, sl, xyz, what[1], what[2], md)
            else:
                paint_vertebra(cv, sl, xyz, what[1], md)
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
        core[k0:k1] = (sub_tissue == Tissue.MARROW_CORE).all(axis=1)
        lab = cv.label.reshape(sub)
        top = lab.max(axis=1)
        count = (lab == top[:, None]).sum(axis=1)
        label[k0:k1] = np.where(2 * count > n_sub, top, 0)
    return {
        "water": water,
        "fat": fat,
        "r2s": r2,
        "tissue": tissue,
        "label": label,
        "core": core,
    }
