"""The phantom's anatomy and tissue values, drawn from the seed before anything is painted.

:func:`build_model` turns a :class:`~RefractureRiskLib.phantom.spec.PhantomSpec` into a
:class:`PhantomModel` (streams 0, 1 and 4 of its seed: anatomy, tissue values, marrow texture):
body sizes and the spine curve, per-level marrow values, fat, muscle and lesion, and the tables
the painters of :mod:`.raster` look up.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.phantom import anatomy as an
from RefractureRiskLib.phantom import tissues as ts
from RefractureRiskLib.phantom.spec import PhantomSpec
from RefractureRiskLib.phantom.tissues import LevelValues, TissueValue
from RefractureRiskLib.phantom.truth import Tissue


@dataclass(frozen=True)
class Lesion:
    """Focal lesion: centre in the body's local frame (mm), radius (mm) and PDFF (%)."""

    centre_local: npt.NDArray[np.float64]
    radius_mm: float
    pdff_pct: float


@dataclass(frozen=True)
class HeightTable:
    """Spine-curve x, y (RAS mm) and body depth (mm) tabulated every ``step_mm`` of height z,
    for fast nearest-sample look-up (the global structures follow the curve)."""

    z0_mm: float
    step_mm: float
    x_mm: npt.NDArray[np.float32]
    y_mm: npt.NDArray[np.float32]
    depth_mm: npt.NDArray[np.float32]

    @classmethod
    def build(
        cls, curve: an.SpineCurve, bodies: tuple[an.BodyGeometry, ...], step_mm: float = 0.2
    ) -> HeightTable:
        zs = curve.points_ras[::-1, 2]
        z = np.arange(zs[0], zs[-1] + step_mm, step_mm)
        order = sorted(bodies, key=_z)
        depth = np.interp(z, [_z(b) for b in order], [b.depth_mm for b in order])
        x = np.interp(z, zs, curve.points_ras[::-1, 0])
        y = np.interp(z, zs, curve.points_ras[::-1, 1])
        f32 = np.float32
        return cls(float(z[0]), step_mm, x.astype(f32), y.astype(f32), depth.astype(f32))

    def index(self, z: npt.NDArray) -> npt.NDArray[np.intp]:
        """Nearest table row of each height ``z`` (clipped to the table)."""
        idx = np.rint((z - np.float32(self.z0_mm)) * np.float32(1.0 / self.step_mm))
        np.clip(idx, 0, self.x_mm.size - 1, out=idx)
        return idx.astype(np.intp)


@dataclass(frozen=True)
class MarrowTexture:
    """Smooth variation of marrow fat fraction inside one body (local frame, mm).

    ``sd_pct * (sqrt(2 / N) * sum_n cos(k_n . x + phase_n) - offset)`` PDFF points: a random
    field of unit variance with wavelengths 10-30 mm, shifted so that its mean over the body's
    core (>= 3 mm deep) is zero and the level's true core value is kept.
    """

    wavevectors: npt.NDArray[np.float32]  # (N, 3) rad/mm along (u, v, w)
    phases: npt.NDArray[np.float32]
    offset: float
    sd_pct: float

    @classmethod
    def draw(
        cls, body: an.BodyGeometry, sd_pct: float, rng: np.random.Generator, n_waves: int = 8
    ) -> MarrowTexture:
        direction = rng.normal(size=(n_waves, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        k = direction * (2 * np.pi / rng.uniform(10.0, 30.0, size=(n_waves, 1)))
        phases = rng.uniform(0, 2 * np.pi, size=n_waves)
        # sd_pct 100 makes fat_fraction_change the unit-variance field itself
        raw = cls(k.astype(np.float32), phases.astype(np.float32), 0.0, 100.0)
        if sd_pct <= 0:
            return replace(raw, sd_pct=0.0)
        # mean of the raw field over the core, on a 1 mm local grid
        a, b, h = body.width_mm / 2, body.depth_mm / 2, body.nominal_height_mm / 2
        u, v, w = np.meshgrid(
            *(np.arange(-x, x + 1.0, 1.0, dtype=np.float32) for x in (a, b, h)), indexing="ij"
        )
        d = an.body_depth_field(u, v, w, a, b, *body.half_height(u, v))
        core = d >= an.CORE_DEPTH_MM
        offset = float(raw.fat_fraction_change(u[core], v[core], w[core]).mean())
        return replace(raw, offset=offset, sd_pct=sd_pct)

    def fat_fraction_change(
        self, u: npt.NDArray, v: npt.NDArray, w: npt.NDArray
    ) -> npt.NDArray[np.float32]:
        """Change of fat fraction (0-1 scale) at local points."""
        total = np.zeros(np.shape(u), np.float32)
        for (ku, kv, kw), phase in zip(self.wavevectors, self.phases, strict=True):
            total += np.cos(ku * u + kv * v + kw * w + phase)
        total *= np.float32(np.sqrt(2.0 / len(self.phases)))
        return (total - np.float32(self.offset)) * np.float32(self.sd_pct / 100.0)


@dataclass(frozen=True)
class PhantomModel:
    """Everything the painters need, fixed (and drawn from the seed) before rasterising."""

    spec: PhantomSpec
    curve: an.SpineCurve
    bodies: tuple[an.BodyGeometry, ...]
    values: dict[str, LevelValues]
    tissue: dict[Tissue, TissueValue]  # fixed tissues at the study's field strength
    subcutaneous_fat: TissueValue
    visceral_fat: TissueValue
    muscle_left: TissueValue
    muscle_right: TissueValue
    fat_thickness_mm: float
    lesion: Lesion | None
    heights: HeightTable
    psoas_z: tuple[float, float]  # z where the psoas begins (T12), where it is full size (L4)
    vessel_z: tuple[float, float]  # lower ends of aorta (L4) and vena cava (L5)
    textures: dict[str, MarrowTexture]  # per body; zero amplitude unless asked for


def _drawn(spec: tuple[float, tuple[float, float], float], ff: float, field: float) -> TissueValue:
    return TissueValue(spec[0], ff, spec[2] * field)


def build_model(spec: PhantomSpec) -> PhantomModel:
    """Draw the anatomy and tissue values of ``spec`` (streams 0, 1 and 4 of its seed)."""
    streams = np.random.SeedSequence(int(spec.seed)).spawn(5)
    anat_rng, tissue_rng = np.random.default_rng(streams[0]), np.random.default_rng(streams[1])
    texture_rng = np.random.default_rng(streams[4])
    dims = {}
    for name, (w, d, h, disc) in an.NOMINAL_BODIES_MM.items():
        j = anat_rng.uniform(-0.03, 0.03, size=3)
        dims[name] = (w * (1 + j[0]), d * (1 + j[1]), h * (1 + j[2]))
        dims[name] += (disc * (1 + anat_rng.uniform(-0.05, 0.05)),)
    dims = an.transitional_dims(dims, spec.transitional)
    curve, bodies = an.build_spine(
        dims, dict(spec.fractured), spec.lordosis_deg, spec.scoliosis_deg, spec.fracture_shape
    )
    values = ts.draw_level_values(spec, tissue_rng)
    field = spec.field_factor
    fat = _drawn(ts.SUBCUTANEOUS_FAT, tissue_rng.uniform(*ts.SUBCUTANEOUS_FAT[1]), field)
    fat_thickness = float(anat_rng.uniform(*an.FAT_THICKNESS_MM))
    muscle_ff = tissue_rng.uniform(*ts.MUSCLE[1], size=2)
    lesion_position = anat_rng.uniform(-1, 1, size=3)
    lesion_radius = float(anat_rng.uniform(4.0, 6.0))  # 8-12 mm diameter
    lesion_pdff = float(tissue_rng.uniform(*ts.LESION_PDFF_PCT))
    visceral = _drawn(ts.VISCERAL_FAT, tissue_rng.uniform(*ts.VISCERAL_FAT[1]), field)
    model = PhantomModel(
        spec=spec,
        curve=curve,
        bodies=bodies,
        values=values,
        tissue={t: v.at_field(field) for t, v in ts.FIXED_TISSUES.items()},
        subcutaneous_fat=fat,
        visceral_fat=visceral,
        muscle_left=_drawn(ts.MUSCLE, float(muscle_ff[0]), field),
        muscle_right=_drawn(ts.MUSCLE, float(muscle_ff[1]), field),
        fat_thickness_mm=fat_thickness,
        lesion=None,
        heights=HeightTable.build(curve, bodies),
        psoas_z=(_z(_named(bodies, "T12")), _z(_named(bodies, "L4"))),
        vessel_z=(_z(_named(bodies, "L4")), _z(_named(bodies, "L5"))),
        textures={
            bd.name: MarrowTexture.draw(bd, spec.marrow_heterogeneity_pct, texture_rng)
            for bd in bodies
        },
    )
    if spec.lesion_level is None:
        return model
    body = _named(bodies, spec.lesion_level)
    a, b, h = body.width_mm / 2, body.depth_mm / 2, body.min_height_mm / 2
    margin = an.CORE_DEPTH_MM + 1.0 + lesion_radius
    # clear of the cortex and of the vein (posterior 11 mm)
    v_lo, v_hi = -b + 12.0 + lesion_radius, b - margin
    centre = np.array(
        [
            lesion_position[0] * max(0.5 * (a - margin), 0.0),
            0.5 * (v_lo + v_hi) + lesion_position[1] * max(0.5 * (v_hi - v_lo), 0.0),
            lesion_position[2] * max(h - margin, 0.0),
        ]
    )
    return replace(model, lesion=Lesion(centre, lesion_radius, lesion_pdff))


def _z(body: an.BodyGeometry) -> float:
    return float(body.centre_ras[2])


def _named(bodies: tuple[an.BodyGeometry, ...], name: str) -> an.BodyGeometry:
    return next(b for b in bodies if b.name == name)
