"""Vertebral body and disc shapes of the world, in each body's local frame.

Local coordinates of a body (mm): ``l`` lateral (+R), ``a`` anterior, ``s`` superior, from the
body centre. Cross-section: a superellipse (exponent 2.3) of half-axes W/2, D/2 whose posterior
wall bows anteriorly by ``POST_CONCAVITY`` * D/2 at the mid-line (kidney shape). End plates
are concave by ``ENDPLATE_CONCAVITY`` * H/2 at the centre. Fractures: "wedge" loses height
anteriorly (none posteriorly), "crush" uniformly, "biconcave" at the end-plate centres.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.phantom.world.canvas import F32, Mask
from RefractureRiskLib.phantom.world.chain import Vertebra
from RefractureRiskLib.phantom.world.spec import FractureSpec

POST_CONCAVITY = 0.12
ENDPLATE_CONCAVITY = 0.08
_P = 2.3

LocalFn = Callable[[F32, F32, F32], tuple[F32, F32, F32, F32, F32]]


def stack_factor(fr: FractureSpec | None) -> float:
    """Mid-line height over nominal that a (fractured) body takes in the chain."""
    if fr is None or fr.shape == "biconcave":
        return 1.0
    return 1.0 - fr.height_loss_frac * (0.5 if fr.shape == "wedge" else 1.0)


def half_height(
    v: Vertebra, fr: FractureSpec | None, uu: npt.ArrayLike, vv: npt.ArrayLike
) -> npt.NDArray:
    """Half height (mm) at normalised cross-section position (uu lateral, vv anterior)."""
    uu, vv = np.asarray(uu, np.float32), np.asarray(vv, np.float32)
    r2 = np.clip(np.abs(uu) ** _P + np.abs(vv) ** _P, 0, 1) ** (2 / _P)
    h = np.float32(v.height_mm)
    conc = ENDPLATE_CONCAVITY
    if fr is not None:
        loss = fr.height_loss_frac
        if fr.shape == "wedge":
            h = h * (1 - loss * (np.clip(vv, -1, 1) + 1) / 2)
        elif fr.shape == "crush":
            h = h * (1 - loss)
        else:
            conc = conc + loss
    return (h / 2 - conc * v.height_mm / 2 * (1 - r2)).astype(np.float32)


def local(v: Vertebra, scale: float = 1.0) -> LocalFn:
    """Function of RAS points giving (l, a, s, uu, vv): local mm and normalised cross-section
    coordinates (``scale`` enlarges the cross-section)."""
    c = v.centre.astype(np.float32)
    fr = v.frame.astype(np.float32)
    hw, hd = v.width_mm / 2 * scale, v.depth_mm / 2 * scale

    def f(x: F32, y: F32, z: F32) -> tuple[F32, F32, F32, F32, F32]:
        dx, dy, dz = x - c[0], y - c[1], z - c[2]
        lat = dx * fr[0, 0] + dy * fr[1, 0] + dz * fr[2, 0]
        ant = dx * fr[0, 1] + dy * fr[1, 1] + dz * fr[2, 1]
        sup = dx * fr[0, 2] + dy * fr[1, 2] + dz * fr[2, 2]
        uu = lat / hw
        post = hd * (1 - POST_CONCAVITY * np.clip(1 - uu**2, 0, 1))
        vv = np.where(ant < 0, ant / post, ant / hd)
        return lat, ant, sup, uu, vv

    return f


def _radial(uu: F32, vv: F32) -> F32:
    return (np.abs(uu) ** _P + np.abs(vv) ** _P) ** (1 / _P)


def body(v: Vertebra, fr: FractureSpec | None):
    """Shape of the body: (fn -> (mask, depth below the surface, mm), lo, hi)."""
    loc = local(v)
    rmin = min(v.width_mm, v.depth_mm) / 2

    def f(x: F32, y: F32, z: F32) -> tuple[Mask, F32]:
        _, _, sup, uu, vv = loc(x, y, z)
        r = _radial(uu, vv)
        hh = half_height(v, fr, uu, vv)
        inside = (r < 1) & (np.abs(sup) < hh)
        depth = np.minimum(hh - np.abs(sup), (1 - r) * rmin)
        return inside, depth.astype(np.float32)

    ext = np.abs(v.frame) @ np.array([v.width_mm, v.depth_mm, v.height_mm]) / 2 + 2
    return f, v.centre - ext, v.centre + ext


def endplate_band(v: Vertebra, fr: FractureSpec | None, superior: bool, band_mm: float):
    """The part of the body within ``band_mm`` of its superior (or inferior) end plate."""
    loc = local(v)

    def f(x: F32, y: F32, z: F32) -> tuple[Mask, F32]:
        _, _, sup, uu, vv = loc(x, y, z)
        hh = half_height(v, fr, uu, vv)
        dist = hh - (sup if superior else -sup)
        inside = (_radial(uu, vv) < 1) & (dist >= 0) & (dist < band_mm) & (np.abs(sup) < hh)
        return inside, dist.astype(np.float32)

    ext = np.abs(v.frame) @ np.array([v.width_mm, v.depth_mm, v.height_mm]) / 2 + 2
    return f, v.centre - ext, v.centre + ext


def disc(upper: Vertebra, lower: Vertebra, h_up: float, h_lo: float, radial: float, margin: float):
    """Space between two bodies' end plates (``h_up``, ``h_lo``: their stacked heights, mm),
    widened by ``margin`` mm into each body (the bodies overwrite it), within ``radial`` of the
    mean cross-section. Depth is the distance to the nearer end plane."""
    mid = Vertebra(
        name="disc",
        centre=(upper.point(0, 0, -h_up / 2) + lower.point(0, 0, h_lo / 2)) / 2,
        frame=upper.frame,
        height_mm=0.0,
        width_mm=(upper.width_mm + lower.width_mm) / 2 * 1.02,
        depth_mm=(upper.depth_mm + lower.depth_mm) / 2 * 1.02,
        disc_below_mm=0.0,
        sacral=False,
    )
    loc = local(mid)
    cu, su = upper.centre.astype(np.float32), upper.sup.astype(np.float32)
    cl, sl = lower.centre.astype(np.float32), lower.sup.astype(np.float32)

    def f(x: F32, y: F32, z: F32) -> tuple[Mask, F32]:
        _, _, _, uu, vv = loc(x, y, z)
        s_up = (x - cu[0]) * su[0] + (y - cu[1]) * su[1] + (z - cu[2]) * su[2] + h_up / 2
        s_lo = (x - cl[0]) * sl[0] + (y - cl[1]) * sl[1] + (z - cl[2]) * sl[2] - h_lo / 2
        inside = (_radial(uu, vv) < radial) & (s_up < margin) & (s_lo > -margin)
        return inside, np.minimum(-s_up, s_lo).astype(np.float32)

    span = np.linalg.norm(upper.centre - lower.centre) / 2 + 5
    ext = np.full(3, max(mid.width_mm, mid.depth_mm) / 2 + span)
    return f, mid.centre - ext, mid.centre + ext


def level_heights(v: Vertebra, fr: FractureSpec | None) -> dict[str, float]:
    """Genant-style heights (mm) on the mid-sagittal line: anterior/middle/posterior at
    90 % / 0 / 90 % of the half depth, and the minimum over the mid-line."""
    h = {
        "height_anterior_mm": 2 * float(half_height(v, fr, 0.0, 0.9)),
        "height_middle_mm": 2 * float(half_height(v, fr, 0.0, 0.0)),
        "height_posterior_mm": 2 * float(half_height(v, fr, 0.0, -0.9)),
    }
    line = 2 * half_height(v, fr, np.zeros(41), np.linspace(-0.97, 0.97, 41))
    h["height_mm"] = float(line.min())
    return h


def analytic_points(v: Vertebra, fr: FractureSpec | None, step_mm: float = 1.0) -> npt.NDArray:
    """RAS points (n, 3) of a ``step_mm`` lattice inside the body (for volume and coverage)."""
    hw, hd, hh = v.width_mm / 2, v.depth_mm / 2, v.height_mm / 2
    lat = np.arange(-hw, hw + step_mm, step_mm, dtype=np.float32)
    ant = np.arange(-hd, hd + step_mm, step_mm, dtype=np.float32)
    sup = np.arange(-hh, hh + step_mm, step_mm, dtype=np.float32)
    ll, aa, ss = np.meshgrid(lat, ant, sup, indexing="ij")
    pts = v.centre + np.stack([ll.ravel(), aa.ravel(), ss.ravel()], 1) @ v.frame.T
    fn, _, _ = body(v, fr)
    x, y, z = (pts[:, a].astype(np.float32) for a in range(3))
    inside, _ = fn(x, y, z)
    return pts[inside]
