"""Painting the surroundings of the spine: trunk layers, paraspinal muscles, retroperitoneal
and mesenteric fat, lungs, liver, spleen, kidneys, psoas, aorta and IVC, bowel.

The trunk is an ellipse in each axial plane (RAS mm): left-right semi-axis ``trunk_lr_mm / 2``,
posterior skin ~60 mm + subcutaneous fat behind the back of the bodies (it follows the spine's
curve), anterior skin ``trunk_ap_mm`` in front of the posterior skin at L3, bulging.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from RefractureRiskLib.phantom.world.canvas import F32, Canvas, capsule, ellipsoid, smooth_field
from RefractureRiskLib.phantom.world.chain import Vertebra
from RefractureRiskLib.phantom.world.spec import WorldSpec
from RefractureRiskLib.phantom.world.tissues import Palette


class SpineLine:
    """The spine's mid-line (centre of the bodies) as functions of z (RAS mm)."""

    def __init__(self, chain: list[Vertebra]) -> None:
        zs = np.array([v.centre[2] for v in chain])[::-1]
        self.z = zs
        self.x = np.array([v.centre[0] for v in chain])[::-1]
        self.y = np.array([v.centre[1] for v in chain])[::-1]
        self.depth = np.array([v.depth_mm for v in chain])[::-1]

    def at(self, z: F32) -> tuple[F32, F32, F32]:
        return (np.interp(z, self.z, self.x).astype(np.float32),
                np.interp(z, self.z, self.y).astype(np.float32),
                np.interp(z, self.z, self.depth).astype(np.float32))  # fmt: skip


def paint_trunk(cv: Canvas, chain: list[Vertebra], spec: WorldSpec, pal: Palette) -> None:
    """Trunk layers over the whole canvas (air outside)."""
    line = SpineLine(chain)
    byn = {v.name: v for v in chain}
    zl3 = byn["L3"].centre[2]
    y_back_l3 = byn["L3"].centre[1] - byn["L3"].depth_mm / 2 - 60 - spec.subcut_fat_mm
    # abdominal contents: mesenteric fat and collapsed bowel / soft tissue interleaved
    rng = np.random.default_rng(spec.seed + 104729)
    centre = byn["L3"].centre
    mix = smooth_field(rng, centre - 260, centre + 260, 5.0, 9.0)
    fat_frac = float(rng.uniform(0.2, 0.6))
    # The trunk changes slowly across a slice: classify the middle sub-slice of each slice and
    # copy it to the slice's other sub-slices.
    nsub = cv.nsub
    nk = cv.shape[0] // nsub
    for k0 in range(0, nk, 4):
        ks = np.arange(k0, min(k0 + 4, nk))
        x, y, z = cv.points(ks * nsub + nsub // 2)
        xs, ys, ds = line.at(z)
        y_post = ys - ds / 2 - 60 - spec.subcut_fat_mm
        y_ant = y_back_l3 + spec.trunk_ap_mm - 0.0015 * (z - zl3) ** 2
        yc, b = (y_post + y_ant) / 2, np.maximum((y_ant - y_post) / 2, 40)
        a = spec.trunk_lr_mm / 2 + np.clip(byn["L4"].centre[2] - z, 0, 80) * 0.25
        dx, dy = x / a, (y - yc) / b
        rho = np.sqrt(dx**2 + dy**2) + 1e-6
        depth = np.sqrt(x**2 + (y - yc) ** 2) * (1 / rho - 1)
        sin_t = dy / rho
        fat = spec.subcut_fat_mm * (1 - 0.25 * (1 - sin_t**2)) * (1 + 0.2 * np.clip(sin_t, 0, 1))
        m = np.zeros(x.shape, np.uint16)
        cavity = depth > 2 + fat
        m[rho < 1] = pal["skin"]
        m[(depth > 2) & (rho < 1)] = pal["subcut_fat"]
        wall = cavity & (depth < 12 + fat) & (sin_t > -0.55)
        m[wall] = pal["muscle"]
        inner = cavity & ~wall
        m[inner] = pal["mesentery"]
        ant = inner & (y >= ys + ds / 2 + 35)
        if ant.any():
            soft = mix(x[ant], y[ant], z[ant]) > _normal_quantile(fat_frac)
            m.reshape(-1)[np.flatnonzero(ant)[soft]] = pal["soft"]
        m[inner & (y < ys + ds / 2 + 35)] = pal["retro_fat"]
        para = inner & (y < ys - ds / 2 - 10) & (np.abs(x - xs) < 30 + 0.6 * (ys - ds / 2 - y))
        m[para] = pal["paraspinal"]
        rows = cv.mat.reshape(nk, nsub, *cv.shape[1:])
        rows[ks] = m[:, None]
    _organs(cv, chain, spec, pal)


def _normal_quantile(p: float) -> float:
    """Approximate standard normal quantile (enough to set an area fraction)."""
    return float(np.sqrt(2) * _erfinv(2 * p - 1))


def _erfinv(v: float) -> float:
    a = 0.147
    ln = np.log(1 - v * v)
    t = 2 / (np.pi * a) + ln / 2
    return float(np.sign(v) * np.sqrt(np.sqrt(t * t - ln / a) - t))


def _organs(cv: Canvas, chain: list[Vertebra], spec: WorldSpec, pal: Palette) -> None:
    byn = {v.name: v for v in chain}
    rng = np.random.default_rng(spec.seed + 7919)
    eye = np.eye(3)
    t8, t11, l1, l2 = byn["T8"], byn["T11"], byn["L1"], byn["L2"]
    cavity = (pal["mesentery"], pal["retro_fat"], pal["soft"])
    for side in (-1, 1):  # lung bases behind the liver and spleen
        c = t8.centre + np.array([side * 85, 5, 70])
        fn, a, b = ellipsoid(c, eye, (60, 65, 110))
        cv.paint(a, b, fn, pal["lung"], over=cavity)
    fn, a, b = ellipsoid(t11.centre + np.array([85, 60, 15]), eye, (95, 80, 85))
    cv.paint(a, b, fn, pal["liver"], over=(*cavity, pal["lung"]))
    fn, a, b = ellipsoid(t11.centre + np.array([-85, 0, 5]), eye, (32, 45, 55))
    cv.paint(a, b, fn, pal["spleen"], over=(*cavity, pal["lung"]))
    for v, side in ((l1, -1), (l2, 1)):
        tilt = np.array([[1, 0, -0.2 * side], [0, 1, 0.15], [0.2 * side, -0.15, 1]], float)
        frame = np.linalg.qr(tilt)[0] * np.sign(np.diag(np.linalg.qr(tilt)[0]))
        c = v.centre + np.array([side * (v.width_mm / 2 + 42), -12, -5])
        fn, a, b = ellipsoid(c, frame, (26, 30, 56))
        cv.paint(a, b, fn, pal["kidney"], over=(*cavity, pal["paraspinal"]))
        fn, a, b = ellipsoid(c + np.array([-side * 12, 4, 0]), frame, (9, 12, 22))
        cv.paint(a, b, fn, pal["renal_sinus"])
    _bowel(cv, chain, spec, pal, rng)
    psoas = [("T12", 5), ("L1", 9), ("L2", 13), ("L3", 17), ("L4", 20), ("L5", 22)]
    for side in (-1, 1):
        pts = [(byn[nm].point(side * (byn[nm].width_mm / 2 + r - 4), -2, 0), r) for nm, r in psoas]
        s1 = byn["S1"]
        pts.append((s1.point(side * (s1.width_mm / 2 + 35), 30, -10), 22))
        for (p0, r0), (p1, r1) in pairwise(pts):
            fn, a, b = capsule(p0, p1, r0, r1)
            cv.paint(a, b, fn, pal["psoas"])
    vessels = [
        v for v in chain if v.name in ("T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4")
    ]
    ao = [v.point(-0.2 * v.width_mm, v.depth_mm / 2 + 13, 0) for v in vessels]
    vc = [v.point(0.3 * v.width_mm, v.depth_mm / 2 + 14, 0) for v in vessels[2:]]
    ra, rv = float(rng.uniform(9, 13)), float(rng.uniform(9, 13))
    for pts, r, m in ((ao, ra, pal["blood"]), (vc, rv, pal["venous"])):
        for p0, p1 in pairwise(pts):
            fn, a, b = capsule(p0, p1, r)
            cv.paint(a, b, fn, m)
    s1, s2 = byn["S1"], byn["S2"]
    for side in (-1, 1):  # common iliac arteries and veins below the bifurcation at ~L4
        for start, r, m in ((ao[-1], ra * 0.6, pal["blood"]), (vc[-1], rv * 0.65, pal["venous"])):
            mid = s1.point(side * 38, s1.depth_mm / 2 + 25, 5)
            end = s2.point(side * 60, s2.depth_mm / 2 + 40, -20)
            for p0, p1 in ((start, mid), (mid, end)):
                fn, a, b = capsule(p0, p1, r)
                cv.paint(a, b, fn, m)


def _bowel(
    cv: Canvas, chain: list[Vertebra], spec: WorldSpec, pal: Palette, rng: np.random.Generator
) -> None:
    """Loops: random-walk tubes in front of the spine (wall, then fluid / fat-mixed contents,
    gas pockets on their anterior side: the patient is supine); fat-mixed blobs the size of a
    vertebral body right in front of the spine."""
    byn = {v.name: v for v in chain}
    top, bottom = byn["L1"].centre, byn["S2"].centre
    front = max(v.centre[1] + v.depth_mm / 2 for v in chain[5:10]) + 30
    l3 = byn["L3"]
    y_back = l3.centre[1] - l3.depth_mm / 2 - 60 - spec.subcut_fat_mm
    y_max = y_back + spec.trunk_ap_mm - spec.subcut_fat_mm - 25
    inside = (pal["mesentery"], pal["retro_fat"], pal["soft"], pal["bowel_wall"],
              pal["bowel_fluid"], pal["bowel_fatmix"], pal["gas"])  # fmt: skip
    lo = np.array([-spec.trunk_lr_mm * 0.3, front, bottom[2]])
    hi = np.array([spec.trunk_lr_mm * 0.3, max(y_max, front + 40), top[2]])
    for n in range(spec.n_bowel_loops):
        r = float(rng.uniform(10, 22))
        p = lo + rng.uniform(0, 1, 3) * (hi - lo)
        d = rng.normal(0, 1, 3)
        pts = [p]
        for _ in range(int(rng.integers(4, 10))):
            d = d / np.linalg.norm(d) + rng.normal(0, 0.7, 3)
            d /= np.linalg.norm(d)
            p = np.clip(p + d * r * 1.6, lo, hi)
            pts.append(p)
        wall = pal["bowel_wall"]
        content = pal["bowel_fatmix"] if rng.uniform() < 0.25 else pal["bowel_fluid"]
        for p0, p1 in pairwise(pts):
            fn, a, b = capsule(p0, p1, r)
            cv.paint(
                a, b, fn, lambda d, _m, c=content, w=wall: np.where(d < 2.5, w, c), over=inside
            )
        if n < round(spec.n_bowel_loops * spec.bowel_gas_frac):
            for p0 in pts[:: int(rng.integers(1, 3))]:
                fn, a, b = ellipsoid(p0 + np.array([0, r * 0.3, 0]), np.eye(3), np.full(3, r * 0.6))
                cv.paint(a, b, fn, pal["gas"], over=inside)
    lumbar = [v for v in chain if v.name.startswith("L")]
    for _ in range(spec.n_fat_blobs):
        v = lumbar[int(rng.integers(0, len(lumbar)))]
        radii = np.array([rng.uniform(18, 25), rng.uniform(14, 20), rng.uniform(12, 18)])
        gap = v.depth_mm / 2 + radii[1] + rng.uniform(20, 50)
        c = v.centre + np.array([rng.uniform(-20, 20), gap, 0])
        fn, a, b = ellipsoid(c, np.eye(3), radii + 2.5)
        cv.paint(a, b, fn, pal["bowel_wall"], over=inside)
        fn, a, b = ellipsoid(c, np.eye(3), radii)
        cv.paint(a, b, fn, pal["bowel_fatmix"], over=inside)
