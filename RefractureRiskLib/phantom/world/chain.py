"""The spine as a chain of vertebral bodies T8..S3: sizes, curve and per-body frames.

Built bottom-up in the sagittal plane from the S1 superior end plate: each body's superior axis
``u`` is tilted anteriorly by ``alpha`` (deg from +S towards +A) and laterally by ``beta`` (deg
from +S towards +R). S1 has ``alpha`` = sacral slope; lordosis is the turn of ``alpha`` from S1
to L1, thoracic kyphosis the opposite turn above. Scoliosis bends ``beta`` linearly across the
apex (Cobb angle = end-to-end change). The whole chain is then rotated and moved so that L3
sits at (offset_x, offset_y, 0) RAS mm. All lengths in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.phantom.world.spec import CHAIN_LEVELS, WorldSpec

#: Nominal body (height, width L-R, depth A-P) in mm and the disc height below it.
_NOMINAL: dict[str, tuple[float, float, float, float]] = {
    "T8": (20.0, 34.0, 27.0, 5.5), "T9": (21.0, 35.0, 28.0, 5.5), "T10": (22.0, 37.0, 29.0, 6.0),
    "T11": (23.0, 39.0, 30.0, 7.0), "T12": (24.0, 41.0, 31.0, 8.0), "L1": (25.0, 43.0, 32.0, 9.0),
    "L2": (26.0, 45.0, 33.0, 10.0), "L3": (27.0, 47.0, 34.0, 11.0), "L4": (27.0, 49.0, 34.0, 11.5),
    "L5": (26.0, 51.0, 33.0, 11.0), "S1": (24.0, 48.0, 32.0, 2.0), "S2": (20.0, 36.0, 25.0, 1.5),
    "S3": (16.0, 28.0, 19.0, 1.5),
}  # fmt: skip


@dataclass(frozen=True)
class Vertebra:
    """One body of the chain. ``frame`` columns: lateral (+R), anterior, superior unit vectors.
    ``height_mm`` is the nominal (unfractured) height; ``disc_below_mm`` the disc gap beneath
    (S1/S2 and S2/S3: fused remnants)."""

    name: str
    centre: npt.NDArray[np.float64]
    frame: npt.NDArray[np.float64]
    height_mm: float
    width_mm: float
    depth_mm: float
    disc_below_mm: float
    sacral: bool

    @property
    def lat(self) -> npt.NDArray[np.float64]:
        return self.frame[:, 0]

    @property
    def ant(self) -> npt.NDArray[np.float64]:
        return self.frame[:, 1]

    @property
    def sup(self) -> npt.NDArray[np.float64]:
        return self.frame[:, 2]

    def point(self, lat: float, ant: float, sup: float) -> npt.NDArray[np.float64]:
        """RAS point at local coordinates (mm) of this body."""
        return self.centre + self.frame @ np.array([lat, ant, sup])


def _frame(alpha_deg: float, beta_deg: float) -> npt.NDArray[np.float64]:
    a, b = np.radians(alpha_deg), np.radians(beta_deg)
    u = np.array([np.sin(b), np.sin(a) * np.cos(b), np.cos(a) * np.cos(b)])
    u /= np.linalg.norm(u)
    ant0 = np.array([0.0, np.cos(a), -np.sin(a)])
    ant = ant0 - (ant0 @ u) * u
    ant /= np.linalg.norm(ant)
    lat = np.cross(ant, u)
    return np.column_stack([lat, ant, u])


def _rotation(deg: tuple[float, float, float]) -> npt.NDArray[np.float64]:
    """Rotation about x (R), then y (A), then z (S), angles in degrees."""
    rx, ry, rz = np.radians(deg)
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return mz @ my @ mx


def build_chain(
    spec: WorldSpec, rng: np.random.Generator, stack_factor: dict[str, float]
) -> list[Vertebra]:
    """The chain T8..S3 (cranial first). ``stack_factor`` scales the height a fractured body
    takes in the stack (its mid-line height over nominal), so neighbours sit on the collapse;
    ``Vertebra.height_mm`` stays nominal."""
    names = CHAIN_LEVELS
    size, disc = _sizes(spec, rng)
    alpha = _sagittal_tilts(spec, rng)
    beta = _coronal_tilts(spec)
    frames = {nm: _frame(alpha[nm], beta[nm]) for nm in names}
    height = {nm: stack_factor.get(nm, 1.0) * size[nm][0] for nm in names}
    centres = _stack(frames, height, disc)
    rot = _rotation(spec.spine_rotation_deg)
    shift = np.array([spec.spine_offset_mm[0], spec.spine_offset_mm[1], 0.0]) - rot @ centres["L3"]
    chain = []
    for nm in names:
        w, dpt = size[nm][1], size[nm][2]
        chain.append(
            Vertebra(
                name=nm,
                centre=rot @ centres[nm] + shift,
                frame=rot @ frames[nm],
                height_mm=size[nm][0],
                width_mm=w,
                depth_mm=dpt,
                disc_below_mm=disc[nm],
                sacral=nm.startswith("S")
                and not (nm == "S1" and spec.transitional == "lumbarised_S1"),
            )
        )
    return chain


def _sizes(
    spec: WorldSpec, rng: np.random.Generator
) -> tuple[dict[str, tuple[float, ...]], dict[str, float]]:
    """Body (height, width, depth) and the disc below each level (mm): nominal x body scale x a
    few percent, degenerated discs lower, transitional anatomy at L5/S1."""
    names = CHAIN_LEVELS
    scale = spec.body_scale
    size = {
        nm: tuple(v * scale * rng.uniform(0.95, 1.05) for v in _NOMINAL[nm][:3]) for nm in names
    }
    disc = {nm: _NOMINAL[nm][3] * scale * rng.uniform(0.85, 1.15) for nm in names}
    for d in spec.discs:
        disc[d.upper_level] *= d.height_frac
    if spec.transitional == "sacralised_L5":
        disc["L5"] = 2.5 * scale
    elif spec.transitional == "lumbarised_S1":
        disc["S1"] = 8.0 * scale
        size["S1"] = (size["S1"][0], size["L5"][1] * 0.95, size["L5"][2] * 0.95)
    return size, disc


def _sagittal_tilts(spec: WorldSpec, rng: np.random.Generator) -> dict[str, float]:
    """Tilt of each body's superior axis (deg, anterior-positive), bottom-up from S1: sacral
    slope, lordosis spread over the lumbar levels, thoracic and junctional kyphosis."""
    alpha = dict.fromkeys(CHAIN_LEVELS, 0.0)
    alpha["S1"] = spec.sacral_slope_deg
    alpha["S2"] = spec.sacral_slope_deg + 8.0
    alpha["S3"] = spec.sacral_slope_deg + 14.0
    lumbar_w = {"L5": 0.32, "L4": 0.26, "L3": 0.2, "L2": 0.13, "L1": 0.09}
    thor = ("T12", "T11", "T10", "T9", "T8")
    prev = alpha["S1"]
    for nm in ("L5", "L4", "L3", "L2", "L1", *thor):
        if nm in lumbar_w:
            step = -spec.lordosis_deg * lumbar_w[nm]
        else:
            step = spec.thoracic_kyphosis_deg / 5.0
        if nm in ("T12", "L1"):
            step += spec.junction_kyphosis_deg / 2.0
        prev = prev + step + rng.normal(0, 1.0)
        alpha[nm] = prev
    return alpha


def _coronal_tilts(spec: WorldSpec) -> dict[str, float]:
    """Scoliosis: the coronal tilt (deg) changes linearly from +cobb/2 to -cobb/2 over 5 levels
    around the apex; the sacrum follows L5."""
    apex = CHAIN_LEVELS.index(spec.scoliosis_apex)
    beta: dict[str, float] = {}
    for idx, nm in enumerate(CHAIN_LEVELS):
        t = np.clip((idx - apex) / 5.0, -0.5, 0.5)
        beta[nm] = -spec.scoliosis_cobb_deg * t if not nm.startswith("S") else beta.get("L5", 0.0)
    return beta


def _stack(
    frames: dict[str, npt.NDArray[np.float64]],
    height: dict[str, float],
    disc: dict[str, float],
) -> dict[str, npt.NDArray[np.float64]]:
    """Body centres, stacked bottom-up and top-down from the S1 superior end plate at the
    origin, each disc along the mean of its neighbours' superior axes."""
    names = CHAIN_LEVELS
    centres: dict[str, npt.NDArray[np.float64]] = {}
    s1 = frames["S1"][:, 2]
    centres["S1"] = -s1 * height["S1"] / 2
    for idx in range(names.index("S1") - 1, -1, -1):
        nm, below = names[idx], names[idx + 1]
        top_below = centres[below] + frames[below][:, 2] * height[below] / 2
        u_mid = frames[below][:, 2] + frames[nm][:, 2]
        u_mid /= np.linalg.norm(u_mid)
        centres[nm] = top_below + u_mid * disc[nm] + frames[nm][:, 2] * height[nm] / 2
    for idx in range(names.index("S1") + 1, len(names)):
        nm, above = names[idx], names[idx - 1]
        bottom_above = centres[above] - frames[above][:, 2] * height[above] / 2
        u_mid = frames[above][:, 2] + frames[nm][:, 2]
        u_mid /= np.linalg.norm(u_mid)
        # the sacral segments step posteriorly as well (sacral kyphosis)
        centres[nm] = bottom_above - u_mid * disc[above] - frames[nm][:, 2] * height[nm] / 2
    return centres
