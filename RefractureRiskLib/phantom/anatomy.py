"""Phantom anatomy: vertebral dimensions, the spine curve and each body's local frame.

World coordinates are RAS millimetres. The spine centre line is a curve parameterised by arc
length ``s`` (mm, increasing caudally). Its tangent leans anteriorly by ``phi(s)`` (sagittal
plane) and to the right by ``psi(s)`` (coronal plane); both vary linearly with ``s`` so the
curve is a smooth arc whose tangent turns by ``lordosis_deg`` (positive = convex anteriorly;
negative = kyphosis) and ``scoliosis_deg`` (positive = convex to the right) between the centres
of T10 and S1. The curve passes through the RAS origin half-way between those centres.

Each vertebral body is an elliptic cylinder (width along the body's right axis, depth along its
anterior axis, height along the curve tangent) whose edges are rounded with radius
:data:`EDGE_RADIUS_MM`; its local frame is (u right, v anterior, w superior) at its centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS
from RefractureRiskLib.phantom.spec import FRACTURE_SHAPES

#: Nominal (width, depth, height) in mm of each body and the disc height below it (mm).
#: T9 and S2 are unlabelled neighbours so that T10 and S1 are not the ends of the column.
NOMINAL_BODIES_MM: dict[str, tuple[float, float, float, float]] = {
    "T9": (34.0, 26.0, 20.0, 8.0),
    "T10": (36.0, 27.0, 21.0, 8.0),
    "T11": (38.0, 28.0, 22.0, 8.5),
    "T12": (40.0, 29.0, 23.5, 9.0),
    "L1": (42.0, 30.0, 25.0, 10.0),
    "L2": (44.0, 31.0, 26.0, 10.5),
    "L3": (46.0, 32.0, 27.0, 11.0),
    "L4": (48.0, 33.0, 27.5, 11.5),
    "L5": (50.0, 33.0, 27.0, 11.0),
    "S1": (48.0, 31.0, 25.0, 3.0),  # S1/S2: rudimentary disc of the fused sacrum
    "S2": (40.0, 24.0, 20.0, 0.0),
}
ALL_BODIES: tuple[str, ...] = tuple(NOMINAL_BODIES_MM)
#: Transitional anatomy: share of the drawn L5/S1 disc left in a sacralised L5 (rudimentary),
#: share of it an S1/S2 disc gets in a lumbarised S1 (well formed), and the unlabelled third
#: sacral segment below a lumbarised S1's sacrum (width, depth, height, disc below; mm).
SACRALISED_DISC_FRAC = 0.4
LUMBARISED_DISC_FRAC = 0.85
S3_BODY_MM: tuple[float, float, float, float] = (34.0, 20.0, 18.0, 0.0)
EDGE_RADIUS_MM = 2.0
CORTEX_MM = 1.0  # cortical shell thickness
RIM_MM = 2.0  # marrow zone inside the cortex where PDFF rises to the core value
CORE_DEPTH_MM = CORTEX_MM + RIM_MM  # depth from the body surface where the core begins
CANAL_WIDTH_MM = 20.0
CANAL_AP_MM = 15.0
CANAL_GAP_MM = 1.5  # between posterior body wall and thecal sac
# Trunk cross-section, relative to the spine curve (u right, v anterior; mm): an ellipse, with
# subcutaneous fat of seeded thickness inside its outline.
TRUNK_HALF_WIDTH_MM = 165.0
TRUNK_HALF_AP_MM = 120.0
TRUNK_CENTRE_V_MM = 20.0
FAT_THICKNESS_MM = (12.0, 28.0)


def layout_height_mm(nominal_mm: float, loss: float, shape: str) -> float:
    """Height a body occupies along the spine: its rim height (mean rim height for a wedge)."""
    if shape == "crush":
        return nominal_mm * (1.0 - loss)
    if shape == "wedge":
        return nominal_mm * (1.0 - loss / 2.0)
    if shape == "biconcave":
        return nominal_mm  # the rim keeps its height
    raise ValueError(f"unknown fracture shape {shape!r}; expected one of {FRACTURE_SHAPES}")


@dataclass(frozen=True)
class BodyGeometry:
    """One body as placed: size (mm), centre (RAS mm) and local axes (unit RAS vectors).

    ``height_mm`` is the height the body occupies along the spine (see
    :func:`layout_height_mm`); a fracture of ``height_loss_frac`` removes that fraction of the
    nominal height uniformly ("crush"), at the anterior wall tapering to none posteriorly
    ("wedge"), or at the centre of both end plates tapering to none at the rim ("biconcave").
    """

    name: str
    width_mm: float
    depth_mm: float
    height_mm: float
    nominal_height_mm: float
    centre_ras: npt.NDArray[np.float64]
    right: npt.NDArray[np.float64]
    anterior: npt.NDArray[np.float64]
    superior: npt.NDArray[np.float64]
    s_mm: float  # arc length of the centre
    height_loss_frac: float = 0.0
    fracture_shape: str = "crush"

    @property
    def labelled(self) -> bool:
        return self.name in VERTEBRAL_LEVELS

    @property
    def min_height_mm(self) -> float:
        """Height where the fracture is deepest (the nominal height when intact)."""
        return self.nominal_height_mm * (1.0 - self.height_loss_frac)

    @property
    def mean_height_mm(self) -> float:
        """Mean height over the cross-section (volume / cross-section area)."""
        if self.fracture_shape == "crush":
            return self.height_mm
        return self.nominal_height_mm * (1.0 - self.height_loss_frac / 2.0)

    def half_height(
        self, u: npt.NDArray, v: npt.NDArray
    ) -> tuple[npt.NDArray | float, npt.NDArray | float, npt.NDArray | float]:
        """Half-height (mm) of the body at local (u, v) and its slopes d/du, d/dv."""
        f, h0 = self.height_loss_frac, self.nominal_height_mm
        if f == 0.0 or self.fracture_shape == "crush":
            return self.height_mm / 2.0, 0.0, 0.0
        a, b = self.width_mm / 2.0, self.depth_mm / 2.0
        if self.fracture_shape == "wedge":
            vb = np.clip(v / np.float32(b), -1.0, 1.0)
            return h0 / 2.0 * (1.0 - f * (1.0 + vb) / 2.0), 0.0, -h0 * f / (4.0 * b)
        rho2 = np.minimum((u / np.float32(a)) ** 2 + (v / np.float32(b)) ** 2, 1.0)
        inside = rho2 < 1.0
        return (
            h0 / 2.0 * (1.0 - f * (1.0 - rho2)),
            np.where(inside, h0 * f * u / a**2, 0.0),
            np.where(inside, h0 * f * v / b**2, 0.0),
        )

    def height_at_mm(self, v_mm: float) -> float:
        """Full height (mm) on the mid-sagittal line at anterior position ``v_mm``."""
        hh, _, _ = self.half_height(np.zeros(1), np.array([v_mm]))
        return float(2.0 * np.asarray(hh).ravel()[0])

    @property
    def rotation(self) -> npt.NDArray[np.float64]:
        """3x3 matrix whose rows are the local axes: local = rotation @ (p - centre)."""
        return np.stack([self.right, self.anterior, self.superior])


def ellipse_perimeter_mm(a_mm: float, b_mm: float) -> float:
    """Ramanujan's second approximation (relative error < 1e-9 for these shapes)."""
    h = ((a_mm - b_mm) / (a_mm + b_mm)) ** 2
    return math.pi * (a_mm + b_mm) * (1.0 + 3.0 * h / (10.0 + math.sqrt(4.0 - 3.0 * h)))


def body_volume_mm3(
    width_mm: float, depth_mm: float, height_mm: float, r_mm: float = EDGE_RADIUS_MM
) -> float:
    """Volume (mm^3) of an elliptic cylinder of mean height ``height_mm`` with rounded rim edges.

    The rounded rim is the inner parallel set of the cross-section: at depth g < r below an end
    its area is A - P g + pi g^2 (Steiner), with g(x) = r - sqrt(r^2 - x^2) over the last r mm.
    Integrating gives V = A h - 2 P r^2 (1 - pi/4) + 2 pi r^3 (5/3 - pi/2): exact for flat end
    plates; for fractured (sloping) end plates, with h the mean height, the rim term is
    approximate (well under 1 % of the volume).
    """
    a, b = width_mm / 2.0, depth_mm / 2.0
    area = math.pi * a * b
    perim = ellipse_perimeter_mm(a, b)
    return (
        area * height_mm
        - 2.0 * perim * r_mm**2 * (1.0 - math.pi / 4.0)
        + 2.0 * math.pi * r_mm**3 * (5.0 / 3.0 - math.pi / 2.0)
    )


def body_depth_field(
    u: npt.NDArray,
    v: npt.NDArray,
    w: npt.NDArray,
    a: float,
    b: float,
    half_height: npt.NDArray | float,
    slope_u: npt.NDArray | float = 0.0,
    slope_v: npt.NDArray | float = 0.0,
) -> npt.NDArray:
    """Depth below the body surface (mm; > 0 inside, < 0 outside) in local coordinates.

    The side distance uses the first-order ellipse distance (1 - rho) / |grad rho|, exact on the
    surface; the end plates lie at w = +-half_height(u, v) (slopes for fractured end plates), the
    rim is rounded with :data:`EDGE_RADIUS_MM`.
    """
    r = EDGE_RADIUS_MM
    ua, vb = u / a, v / b
    rho = np.sqrt(ua * ua + vb * vb)
    grad = np.sqrt((ua / a) ** 2 + (vb / b) ** 2)
    # |grad rho| = grad / rho; guard the centre line where both vanish.
    d_side = np.where(grad > 1e-9, (1.0 - rho) * rho / np.maximum(grad, 1e-9), min(a, b))
    d_end = half_height - np.abs(w)
    if np.any(slope_u) or np.any(slope_v):
        d_end = d_end / np.sqrt(1.0 + np.square(slope_u) + np.square(slope_v))
    corner = (d_side < r) & (d_end < r)
    d = np.minimum(d_side, d_end)
    if np.any(corner):
        dc = r - np.hypot(r - d_side[corner], r - d_end[corner])
        d[corner] = dc
    return d


@dataclass(frozen=True)
class SpineCurve:
    """Sampled centre line: arc length ``s_mm``, RAS points and unit caudal tangents."""

    s_mm: npt.NDArray[np.float64]
    points_ras: npt.NDArray[np.float64]
    tangents: npt.NDArray[np.float64]

    def at(self, s: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Point and unit caudal tangent at arc length ``s`` (linear interpolation)."""
        p = np.array([np.interp(s, self.s_mm, self.points_ras[:, c]) for c in range(3)])
        t = np.array([np.interp(s, self.s_mm, self.tangents[:, c]) for c in range(3)])
        return p, t / np.linalg.norm(t)


def local_axes(
    tangent: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(right, anterior, superior) unit axes of a body whose caudal tangent is ``tangent``."""
    sup = -tangent / np.linalg.norm(tangent)
    right = np.array([1.0, 0.0, 0.0]) - sup[0] * sup
    right /= np.linalg.norm(right)
    ant = np.cross(sup, right)
    return right, ant, sup


def transitional_dims(
    dims: dict[str, tuple[float, float, float, float]], kind: str | None
) -> dict[str, tuple[float, float, float, float]]:
    """Body/disc dimensions (as in :func:`build_spine`) with lumbosacral transitional anatomy.

    ``None``: ``dims`` unchanged. ``"sacralised_L5"``: the L5/S1 disc shrinks to
    :data:`SACRALISED_DISC_FRAC` of its height (a rudimentary disc, as between S1 and S2) and the
    L5 body takes the mean of its and S1's width, depth and height. ``"lumbarised_S1"``: S1
    gets a well-formed S1/S2 disc (:data:`LUMBARISED_DISC_FRAC` of the L5/S1 disc), so it is a
    sixth mobile segment; the sacrum begins at S2, whose rudimentary S2/S3 disc has the drawn
    S1/S2 height, and an unlabelled S3 (:data:`S3_BODY_MM`, scaled like S2) ends the column.
    Names stay anatomical (counted from above).
    """
    if kind is None:
        return dims
    out = dict(dims)
    if kind == "sacralised_L5":
        l5, s1 = dims["L5"], dims["S1"]
        shape = tuple(0.5 * (a + b) for a, b in zip(l5[:3], s1[:3], strict=True))
        out["L5"] = (*shape, l5[3] * SACRALISED_DISC_FRAC)
        return out
    if kind == "lumbarised_S1":
        s1, s2 = dims["S1"], dims["S2"]
        out["S1"] = (*s1[:3], dims["L5"][3] * LUMBARISED_DISC_FRAC)
        out["S2"] = (*s2[:3], s1[3])
        scale = [d / n for d, n in zip(s2[:3], NOMINAL_BODIES_MM["S2"][:3], strict=True)]
        out["S3"] = (*(x * f for x, f in zip(S3_BODY_MM[:3], scale, strict=True)), 0.0)
        return out
    raise ValueError(f"unknown transitional anatomy {kind!r}")


def build_spine(
    dims: dict[str, tuple[float, float, float, float]],
    height_loss: dict[str, float],
    lordosis_deg: float,
    scoliosis_deg: float,
    fracture_shape: str = "crush",
) -> tuple[SpineCurve, tuple[BodyGeometry, ...]]:
    """Lay the bodies and discs along the curve.

    ``dims``: per body, cranial to caudal (:data:`ALL_BODIES`, or more, see
    :func:`transitional_dims`), (width, depth, nominal height, disc below) in mm;
    ``height_loss``: per body fraction of height lost (fracture); the bodies below move up by
    the lost layout height.
    """
    centres_s: dict[str, float] = {}
    heights: dict[str, float] = {}
    s = 0.0
    for name in dims:
        _, _, h_nom, disc = dims[name]
        h = layout_height_mm(h_nom, height_loss.get(name, 0.0), fracture_shape)
        heights[name] = h
        centres_s[name] = s + h / 2.0
        s += h + disc
    span = centres_s["S1"] - centres_s["T10"]
    s_mid = 0.5 * (centres_s["S1"] + centres_s["T10"])
    ds = 0.25
    s_grid = np.arange(-60.0, s + 60.0 + ds, ds)
    phi = math.radians(lordosis_deg) * (s_mid - s_grid) / span
    psi = math.radians(scoliosis_deg) * (s_mid - s_grid) / span
    tang = np.stack([np.tan(psi), np.tan(phi), -np.ones_like(s_grid)], axis=1)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True)
    pts = np.zeros_like(tang)
    pts[1:] = np.cumsum(0.5 * (tang[1:] + tang[:-1]) * ds, axis=0)
    mid = np.array([np.interp(s_mid, s_grid, pts[:, c]) for c in range(3)])
    curve = SpineCurve(s_grid, pts - mid, tang)
    bodies = []
    for name in dims:
        width, depth, h_nom, _ = dims[name]
        centre, t = curve.at(centres_s[name])
        right, ant, sup = local_axes(t)
        bodies.append(
            BodyGeometry(
                name=name,
                width_mm=width,
                depth_mm=depth,
                height_mm=heights[name],
                nominal_height_mm=h_nom,
                centre_ras=centre,
                right=right,
                anterior=ant,
                superior=sup,
                s_mm=centres_s[name],
                height_loss_frac=height_loss.get(name, 0.0),
                fracture_shape=fracture_shape,
            )
        )
    return curve, tuple(bodies)
