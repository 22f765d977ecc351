"""Painting the spine: discs, bodies (cortex, rim, core, vein), pathology, posterior elements
that connect neighbouring vertebrae, spinal canal with cord, ribs, sacrum and iliac wings.

``lev`` on the canvas holds the product label (T10=1 .. S1=9) in labelled bodies and the negative
chain index + 1 in unlabelled ones (T8, T9, S2, S3), so pathology can be confined to one body.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_label
from RefractureRiskLib.phantom.world import bodies as bd
from RefractureRiskLib.phantom.world.canvas import F32, Canvas, capsule, ellipsoid
from RefractureRiskLib.phantom.world.chain import Vertebra
from RefractureRiskLib.phantom.world.spec import WorldSpec
from RefractureRiskLib.phantom.world.tissues import Palette

CORTEX_MM = 1.0
CORE_DEPTH_MM = 3.0


def body_label(chain: list[Vertebra], idx: int) -> int:
    nm = chain[idx].name
    return level_label(nm) if nm in VERTEBRAL_LEVELS else -(idx + 1)


def _frame_along(d: npt.NDArray, lat: npt.NDArray) -> npt.NDArray:
    e1 = d / np.linalg.norm(d)
    e2 = lat - (lat @ e1) * e1
    e2 /= np.linalg.norm(e2)
    return np.column_stack([e1, e2, np.cross(e1, e2)])


def _bone(cv: Canvas, shape, cortex: int, marrow: int, shell_mm: float = 1.2) -> None:
    fn, lo, hi = shape
    cv.paint(lo, hi, fn, lambda d, m: np.where(d < shell_mm, cortex, marrow))


def paint_spine(
    cv: Canvas,
    chain: list[Vertebra],
    spec: WorldSpec,
    pal: Palette,
    rng: np.random.Generator,
    texture,
) -> None:
    """Paint every spinal structure onto ``cv`` (after the surroundings)."""
    fr = {f.level: f for f in spec.fractures}
    stacked = [v.height_mm * bd.stack_factor(fr.get(v.name)) for v in chain]
    _posterior(cv, chain, spec, pal)
    _canal(cv, chain, pal)
    degen = {d.upper_level: d for d in spec.discs}
    for idx in range(len(chain) - 1):
        up, lo = chain[idx], chain[idx + 1]
        sacralised = up.name == "L5" and spec.transitional == "sacralised_L5"
        fused = (up.sacral and lo.sacral) or sacralised
        fn, a, b = bd.disc(up, lo, stacked[idx], stacked[idx + 1], 1.0, 2.0)
        if fused:
            cv.paint(a, b, fn, pal.levels[lo.name].core)  # bony bridge at the rim
            fn, a, b = bd.disc(up, lo, stacked[idx], stacked[idx + 1], 0.8, 0.0)
            cv.paint(a, b, fn, pal["disc_remnant"])
            continue
        cv.paint(a, b, fn, pal["disc_degen"] if up.name in degen else pal["disc"])
        if up.name not in degen:
            fn, a, b = bd.disc(up, lo, stacked[idx], stacked[idx + 1], 0.55, 1.0)
            cv.paint(a, b, fn, pal["nucleus"])
    for idx, v in enumerate(chain):
        lm = pal.levels[v.name]
        lab = body_label(chain, idx)
        drop, sd = spec.rim_drop_pct, spec.texture_sd_pct

        def material(depth: F32, _m, lm=lm) -> npt.NDArray:
            return np.where(
                depth < CORTEX_MM, lm.cortex, np.where(depth < CORE_DEPTH_MM, lm.rim, lm.core)
            )

        def offset(x: F32, y: F32, z: F32, depth: F32, drop=drop, sd=sd) -> F32:
            rim = np.clip((CORE_DEPTH_MM - depth) / (CORE_DEPTH_MM - CORTEX_MM), 0, 1)
            return (texture(x, y, z) * sd - drop * rim).astype(np.float32)

        fn, a, b = bd.body(v, fr.get(v.name))
        cv.paint(a, b, fn, material, label=lab, offset=offset)
        # basivertebral vein: posterior mid-height, reaching the posterior wall
        fn, a, b = ellipsoid(v.point(0, -v.depth_mm / 2 + 4, 0), v.frame, (5.0, 5.5, 2.2))
        cv.paint(a, b, fn, lm.vein, only_label=lab)
    _pathology(cv, chain, spec, pal, rng, stacked)


def _pathology(cv, chain, spec, pal, rng, stacked) -> None:
    fr = {f.level: f for f in spec.fractures}
    by_name = {v.name: (i, v) for i, v in enumerate(chain)}
    for d in spec.discs:
        if d.modic == "none":
            continue
        i, up = by_name[d.upper_level]
        lo = chain[i + 1]
        band = float(rng.uniform(3, 5))
        for v, sup in ((up, False), (lo, True)):
            fn, a, b = bd.endplate_band(v, fr.get(v.name), sup, band)
            lab = body_label(chain, by_name[v.name][0])
            cv.paint(a, b, fn, pal["modic1" if d.modic == "1" else "modic2"], only_label=lab)
    for nm in spec.haemangioma_levels:
        i, v = by_name[nm]
        r = float(rng.uniform(2.5, 7.5))
        c = v.point(rng.uniform(-0.25, 0.25) * v.width_mm, rng.uniform(-0.1, 0.25) * v.depth_mm,
                    rng.uniform(-0.15, 0.15) * v.height_mm)  # fmt: skip
        fn, a, b = ellipsoid(c, v.frame, (r, r * rng.uniform(0.8, 1.2), r * rng.uniform(0.7, 1)))
        cv.paint(a, b, fn, pal["haemangioma"], only_label=level_label(nm))
    for nm in spec.cement_levels:
        i, v = by_name[nm]
        h = v.height_mm * bd.stack_factor(fr.get(nm))
        for _ in range(int(rng.integers(3, 6))):
            c = v.point(rng.uniform(-0.25, 0.25) * v.width_mm, rng.uniform(-0.2, 0.25) * v.depth_mm,
                        rng.uniform(-0.25, 0.25) * h)  # fmt: skip
            radii = rng.uniform(5, 11, 3) * np.array([1.0, 1.0, min(1.0, h / 22)])
            fn, a, b = ellipsoid(c, v.frame, radii)
            cv.paint(a, b, fn, pal["cement"], only_label=level_label(nm))
    for nm in spec.schmorl_levels:
        i, v = by_name[nm]
        sup = bool(rng.uniform() < 0.5)
        hh = float(bd.half_height(v, fr.get(nm), 0.0, 0.0))
        c = v.point(rng.uniform(-5, 5), rng.uniform(-5, 5), hh if sup else -hh)
        r = float(rng.uniform(4, 6))
        fn, a, b = ellipsoid(c, v.frame, (r, r, rng.uniform(3.5, 6)))
        cv.paint(a, b, fn, pal["disc"], label=0, only_label=level_label(nm))
    for nm in spec.osteophyte_levels:
        i, v = by_name[nm]
        for sup in (True, False):
            s = v.height_mm / 2 * bd.stack_factor(fr.get(nm)) * (1 if sup else -1)
            c = v.point(rng.uniform(-8, 8), v.depth_mm / 2 + 1.5, s + (1.5 if sup else -1.5))
            fn, a, b = ellipsoid(c, v.frame, (8.0, rng.uniform(2.5, 4.5), rng.uniform(2, 4)))
            cv.paint(a, b, fn, pal["osteophyte"], only_label=0)


def _posterior(cv: Canvas, chain: list[Vertebra], spec: WorldSpec, pal: Palette) -> None:
    pc, pm = pal["pe_cortex"], pal["pe_marrow"]
    s = spec.body_scale
    ribbed = chain[: [v.name for v in chain].index(spec.last_rib_level) + 1]
    ribbed_names = {v.name for v in ribbed}
    prev_inf: dict[int, npt.NDArray] = {}
    for v in chain:
        w2, d2, h2 = v.width_mm / 2, v.depth_mm / 2, v.height_mm / 2
        if v.sacral:
            _bone(cv, capsule(v.point(0, -d2 - 10 * s, 0), v.point(0, -d2 - 16 * s, -h2), 6 * s),
                  pc, pm)  # fmt: skip
            for side in (-1, 1):
                sup_art = v.point(side * 0.33 * v.width_mm, -d2 - 10 * s, h2)
                if side in prev_inf:
                    _bone(cv, capsule(prev_inf[side], sup_art, 5.5 * s), pc, pm)
                prev_inf.pop(side, None)
            continue
        thoracic = v.name.startswith("T")
        for side in (-1, 1):
            root = v.point(side * 0.3 * v.width_mm, -d2 + 3, 0.1 * v.height_mm)
            end = v.point(side * 0.3 * v.width_mm, -d2 - 13 * s, 0.1 * v.height_mm)
            _bone(cv, capsule(root, end, 4.5 * s), pc, pm)
            lam = v.point(0, -d2 - 23 * s, -0.15 * v.height_mm)
            _bone(cv, capsule(end, lam, 3.8 * s), pc, pm)
            sup_art = v.point(side * 0.33 * v.width_mm, -d2 - 14 * s, h2 + 2)
            inf_art = v.point(side * 0.3 * v.width_mm, -d2 - 17 * s, -h2 - 3)
            _bone(cv, capsule(end, sup_art, 5 * s), pc, pm)
            _bone(cv, capsule(end, inf_art, 5 * s), pc, pm)
            if side in prev_inf:  # facet joint: the pillar links to the vertebra above
                _bone(cv, capsule(prev_inf[side], sup_art, 4.5 * s), pc, pm)
            prev_inf[side] = inf_art
            if not thoracic and v.name not in ribbed_names:
                tip = v.point(side * (w2 + (24 if v.name == "L3" else 18) * s), -d2 - 6 * s, 0)
                _bone(cv, capsule(end, tip, 4 * s), pc, pm)
        base = v.point(0, -d2 - 22 * s, -0.15 * v.height_mm)
        tip = v.point(0, -d2 - (40 if thoracic else 48) * s, -(0.9 if thoracic else 0.35) * h2 * 2)
        frame = _frame_along(tip - base, v.lat)
        radii = (np.linalg.norm(tip - base) / 2 + 3, 3.5 * s, (5 if thoracic else 9) * s)
        _bone(cv, ellipsoid((base + tip) / 2, frame, radii), pc, pm)
    for v in ribbed:
        _rib(cv, v, pal, spec, v.name == ribbed[-1].name)
    _pelvis(cv, chain, pal, spec)


def _rib(cv: Canvas, v: Vertebra, pal: Palette, spec: WorldSpec, last: bool) -> None:
    """A rib: head at the body, tubercle at the transverse process, then round the trunk on an
    ellipse about the spine (semi-axes ~ the inner trunk wall), descending anteriorly."""
    a_r = max(spec.trunk_lr_mm / 2 - spec.subcut_fat_mm - 25, v.width_mm / 2 + 50)
    b_r = v.depth_mm / 2 + 45
    yc = v.centre[1] + 20
    start = -np.degrees(np.arccos(min((v.width_mm / 2 + 40) / a_r, 0.95)))
    end = -10.0 if last else 60.0
    for side in (-1, 1):
        pts = [
            v.point(side * 0.4 * v.width_mm, -v.depth_mm / 2 - 2, 0.2 * v.height_mm),
            v.point(side * (v.width_mm / 2 + 18), -v.depth_mm / 2 - 14, 0),
        ]
        for k, phi in enumerate(np.radians(np.linspace(start, end, 6))):
            px = v.centre[0] + side * a_r * np.cos(phi)
            pts.append(np.array([px, yc + b_r * np.sin(phi), v.centre[2] - 9 * (k + 1)]))
        for p0, p1 in pairwise(pts):
            _bone(cv, capsule(p0, p1, 4.5), pal["rib_cortex"], pal["rib_marrow"])


def _pelvis(cv: Canvas, chain: list[Vertebra], pal: Palette, spec: WorldSpec) -> None:
    byn = {v.name: v for v in chain}
    s1, l5 = byn["S1"], byn["L5"]
    pc, pm = pal["pelvis_cortex"], pal["pelvis_marrow"]
    for side in (-1, 1):
        for nm, rad in (("S1", (24, 17, 15)), ("S2", (18, 13, 11))):
            v = byn[nm]
            c = v.point(side * (v.width_mm / 2 + rad[0] - 6), -4, 0)
            _bone(cv, ellipsoid(c, v.frame, np.array(rad) * spec.body_scale), pc, pm, 1.5)
        d = np.array([side * 40.0, 75.0, 0.0])
        d /= np.linalg.norm(d)
        n = np.array([d[1], -d[0], 0.0]) * side
        frame = np.column_stack([d, [0.0, 0.0, 1.0], n])
        c = np.array([s1.centre[0] + side * 90, s1.centre[1] + 20, l5.centre[2] - 35])
        _bone(cv, ellipsoid(c, frame, (50.0, 55.0, 7.0)), pc, pm, 1.5)


def _canal(cv: Canvas, chain: list[Vertebra], pal: Palette) -> None:
    cc = []
    for v in chain:
        lumbar = v.name.startswith("L")
        r = 5.0 if v.sacral else (8.5 if lumbar else 7.5)
        cc.append((v.point(0, -v.depth_mm / 2 - r - 1, 0), r))
    for (p0, r0), (p1, r1) in pairwise(cc):
        fn, a, b = capsule(p0, p1, r0, r1)
        cv.paint(a, b, fn, pal["csf"])
    names = [v.name for v in chain]
    for (p0, r0), (p1, _r1), nm in zip(cc[:-1], cc[1:], names, strict=False):
        if nm.startswith("L") and nm != "L1":
            fn, a, b = capsule(p0 - [0, r0 - 2.5, 0], p1 - [0, r0 - 2.5, 0], 2.2)
            cv.paint(a, b, fn, pal["epidural_fat"])
    conus = names.index("L1")
    for idx in range(conus + 1):
        p0, r0 = cc[idx]
        p1 = cc[idx + 1][0] if idx < conus else (cc[idx][0] + cc[idx + 1][0]) / 2
        fn, a, b = capsule(p0, p1, 4.5 if idx < conus else 4.0, 4.5 if idx < conus else 1.5)
        cv.paint(a, b, fn, pal["cord"])
