"""``WorldSpec``: every option of one "world" study (validated), random draws and seed sets.

The world is a second synthetic generator, independent of ``RefractureRiskLib.phantom``'s own
anatomy: a spine chain T8..S3 in a trunk with viscera and bowel, acquired sagittal 2D or axial
3D. Angles are degrees, lengths millimetres, PDFF percent (0-100), R2* 1/s at 1.5 T (the
generator doubles tissue R2* at 3 T). Level names are anatomical (transitional anatomy never
renames a level).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from RefractureRiskLib.core.errors import InputError

#: The chain of vertebrae the world builds, cranial to caudal (coccyx not built).
CHAIN_LEVELS: tuple[str, ...] = (
    "T8", "T9", "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1", "S2", "S3",
)  # fmt: skip
#: Levels that may carry pathology (labelled and not fused).
PATHOLOGY_LEVELS: tuple[str, ...] = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")
FRACTURE_SHAPES: tuple[str, ...] = ("wedge", "crush", "biconcave")
TRANSITIONAL: tuple[str, ...] = ("none", "sacralised_L5", "lumbarised_S1")
MODIC: tuple[str, ...] = ("none", "1", "2")
MAPS: tuple[str, ...] = ("all", "pdff+r2s")

#: Frozen test seeds: never used for tuning anything.
TEST_SEEDS: tuple[int, ...] = tuple(range(1_000_000, 1_000_060))


@dataclass(frozen=True)
class FractureSpec:
    """One fractured body: ``shape`` in :data:`FRACTURE_SHAPES`, ``height_loss_frac`` where the
    loss is deepest (0.05-0.7), ``acute`` adds marrow oedema (PDFF ``oedema_pct`` points lower)."""

    level: str
    shape: str = "wedge"
    height_loss_frac: float = 0.3
    acute: bool = True
    oedema_pct: float = 20.0


@dataclass(frozen=True)
class DiscSpec:
    """A degenerated disc below ``upper_level``: height ``height_frac`` of normal (0.2-1), lower
    signal, and Modic end-plate bands ("1": oedema, PDFF 10-20 %; "2": fatty, PDFF 70-85 %)."""

    upper_level: str
    height_frac: float = 0.5
    modic: str = "none"


@dataclass(frozen=True)
class WorldSpec:
    """All options of one world study; :func:`generate_world` is deterministic given it.

    Acquisition: ``orientation`` "sagittal" (2D slices L-R, k towards the patient's right;
    rows S->I, columns A->P) or "axial" (slices I->S; rows A->P, columns R->L).
    ``fov_mm`` is the in-plane square field of view, ``pixel_mm`` the in-plane spacing,
    ``slice_thickness_mm`` + ``slice_gap_mm`` the slice spacing, ``n_slices`` the sagittal
    slice count (axial: derived from the coverage). The field of view is centred on the spine
    between ``top_level`` and ``bottom_level`` plus ``fov_shift_mm`` (R, A, S); sagittal
    coverage in S-I is ``fov_mm`` (levels beyond it are cut), axial slices run from the centre
    of ``top_level`` + ``top_margin_mm`` to the centre of ``bottom_level`` - ``bottom_margin_mm``.
    ``oblique_deg`` tilts the grid about its row axis. ``snr``: marrow signal over the noise SD
    per real/imaginary channel (None: noiseless). ``coil_shading_frac``: peak-to-trough
    multiplicative receive variation (posterior brighter). ``maps``: "all" six maps or only
    "pdff+r2s"; ``vendor_mask`` sets background (low signal) to 0 in maps-only exports.
    """

    seed: int = 0
    # acquisition
    orientation: str = "sagittal"
    field_strength_t: float = 1.5
    snr: float | None = None
    fov_mm: float = 320.0
    pixel_mm: float = 1.25
    slice_thickness_mm: float = 4.0
    slice_gap_mm: float = 0.4
    n_slices: int = 16
    top_level: str = "T11"
    bottom_level: str = "S1"
    top_margin_mm: float = 0.0
    bottom_margin_mm: float = 0.0
    fov_shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    oblique_deg: float = 0.0
    coil_shading_frac: float = 0.3
    maps: str = "all"
    vendor_mask: bool = False
    # spine shape
    body_scale: float = 1.0
    lordosis_deg: float = 40.0
    sacral_slope_deg: float = 40.0
    thoracic_kyphosis_deg: float = 15.0
    junction_kyphosis_deg: float = 0.0
    scoliosis_cobb_deg: float = 0.0
    scoliosis_apex: str = "L1"
    spine_offset_mm: tuple[float, float] = (0.0, 0.0)
    spine_rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    transitional: str = "none"
    last_rib_level: str = "T12"
    # marrow
    marrow_pdff_pct: float = 45.0
    level_pdff_sd_pct: float = 3.0
    marrow_r2s_per_s: float = 70.0
    texture_sd_pct: float = 2.0
    rim_drop_pct: float = 6.0
    # pathology
    fractures: tuple[FractureSpec, ...] = ()
    cement_levels: tuple[str, ...] = ()
    haemangioma_levels: tuple[str, ...] = ()
    schmorl_levels: tuple[str, ...] = ()
    osteophyte_levels: tuple[str, ...] = ()
    discs: tuple[DiscSpec, ...] = ()
    # surroundings
    trunk_ap_mm: float = 250.0
    trunk_lr_mm: float = 330.0
    subcut_fat_mm: float = 25.0
    paraspinal_pdff_pct: float = 8.0
    liver_pdff_pct: float = 5.0
    liver_r2s_per_s: float = 40.0
    mesentery_pdff_pct: float = 88.0
    n_bowel_loops: int = 6
    bowel_gas_frac: float = 0.4
    n_fat_blobs: int = 2

    def __post_init__(self) -> None:
        _validate(self)


def _bad(name: str, why: str) -> InputError:
    return InputError(f"WorldSpec.{name}", why)


def _range(spec: WorldSpec, name: str, lo: float, hi: float) -> None:
    value = getattr(spec, name)
    if not isinstance(value, int | float) or not np.isfinite(value) or not lo <= value <= hi:
        raise _bad(name, f"{value!r} is outside [{lo}, {hi}]")


def _choice(spec: WorldSpec, name: str, allowed: tuple) -> None:
    if getattr(spec, name) not in allowed:
        raise _bad(name, f"{getattr(spec, name)!r} is not one of {allowed}")


def _levels(name: str, levels: tuple[str, ...], allowed: tuple[str, ...]) -> None:
    if not isinstance(levels, tuple):
        raise _bad(name, f"must be a tuple of level names, got {type(levels).__name__}")
    for lv in levels:
        if lv not in allowed:
            raise _bad(name, f"level {lv!r} is not one of {allowed}")


def _validate(s: WorldSpec) -> None:
    _choice(s, "orientation", ("sagittal", "axial"))
    _choice(s, "field_strength_t", (1.5, 3.0))
    if s.snr is not None:
        _range(s, "snr", 2.0, 1000.0)
    _range(s, "fov_mm", 150.0, 500.0)
    _range(s, "pixel_mm", 0.5, 3.0)
    _range(s, "slice_thickness_mm", 1.0, 10.0)
    _range(s, "slice_gap_mm", 0.0, 5.0)
    _range(s, "n_slices", 1, 80)
    _choice(s, "top_level", CHAIN_LEVELS[:5])
    _choice(s, "bottom_level", CHAIN_LEVELS[9:])
    _range(s, "top_margin_mm", -40.0, 40.0)
    _range(s, "bottom_margin_mm", -40.0, 40.0)
    _range(s, "oblique_deg", -20.0, 20.0)
    _range(s, "coil_shading_frac", 0.0, 0.8)
    _choice(s, "maps", MAPS)
    if s.vendor_mask and s.maps != "pdff+r2s":
        raise _bad("vendor_mask", "only maps-only exports (maps='pdff+r2s') are masked")
    for name, (lo, hi) in {
        "body_scale": (0.7, 1.3), "lordosis_deg": (0.0, 80.0),
        "sacral_slope_deg": (15.0, 65.0), "thoracic_kyphosis_deg": (-10.0, 45.0),
        "junction_kyphosis_deg": (0.0, 30.0), "scoliosis_cobb_deg": (-35.0, 35.0),
        "marrow_pdff_pct": (5.0, 90.0), "level_pdff_sd_pct": (0.0, 10.0),
        "marrow_r2s_per_s": (10.0, 300.0), "texture_sd_pct": (0.0, 5.0),
        "rim_drop_pct": (0.0, 15.0), "trunk_ap_mm": (150.0, 400.0),
        "trunk_lr_mm": (220.0, 500.0), "subcut_fat_mm": (3.0, 80.0),
        "paraspinal_pdff_pct": (0.0, 60.0), "liver_pdff_pct": (0.0, 50.0),
        "liver_r2s_per_s": (10.0, 300.0), "mesentery_pdff_pct": (50.0, 100.0),
        "n_bowel_loops": (0, 20), "bowel_gas_frac": (0.0, 1.0), "n_fat_blobs": (0, 6),
    }.items():  # fmt: skip
        _range(s, name, lo, hi)
    _choice(s, "scoliosis_apex", CHAIN_LEVELS[2:10])
    _choice(s, "transitional", TRANSITIONAL)
    _choice(s, "last_rib_level", ("T11", "T12", "L1"))
    for name in ("fov_shift_mm", "spine_offset_mm", "spine_rotation_deg"):
        vec = getattr(s, name)
        if not isinstance(vec, tuple) or not all(abs(float(v)) <= 60.0 for v in vec):
            raise _bad(name, f"{vec!r} must be a tuple of numbers within +-60")
    for name in ("cement_levels", "haemangioma_levels", "schmorl_levels", "osteophyte_levels"):
        _levels(name, getattr(s, name), PATHOLOGY_LEVELS)
    for fr in s.fractures:
        if not isinstance(fr, FractureSpec) or fr.level not in PATHOLOGY_LEVELS:
            raise _bad("fractures", f"{fr!r} is not a FractureSpec at one of {PATHOLOGY_LEVELS}")
        if fr.shape not in FRACTURE_SHAPES or not 0.05 <= fr.height_loss_frac <= 0.7:
            raise _bad("fractures", f"{fr!r}: shape in {FRACTURE_SHAPES}, loss in [0.05, 0.7]")
        if not 0.0 <= fr.oedema_pct <= 40.0:
            raise _bad("fractures", f"{fr!r}: oedema_pct must be in [0, 40]")
    for d in s.discs:
        if not isinstance(d, DiscSpec) or d.upper_level not in CHAIN_LEVELS[:10]:
            raise _bad("discs", f"{d!r} is not a DiscSpec below one of T8..L5")
        if not 0.2 <= d.height_frac <= 1.0 or d.modic not in MODIC:
            raise _bad("discs", f"{d!r}: height_frac in [0.2, 1], modic in {MODIC}")


def random_world_spec(rng: np.random.Generator, seed: int) -> WorldSpec:
    """Draw a varied, realistic spec (distribution documented inline); ``seed`` is stored in
    the spec and seeds the generator's own noise and anatomy details.

    The draws are made in one fixed order (the helpers below are called in it): the frozen
    evaluation sets are generated from their seeds, so reordering them changes every study.
    """
    u = rng.uniform
    sagittal = u() < 0.8
    field = 3.0 if u() < 0.4 else 1.5
    snr_bin = rng.choice(4, p=[0.2, 0.35, 0.35, 0.1])
    snr = None if snr_bin == 3 else float(u(*[(5, 10), (10, 20), (20, 50)][snr_bin]))
    maps = "pdff+r2s" if u() < 0.25 else "all"
    fractures = _draw_fractures(rng)
    n_cement = int(rng.choice(4, p=[0.7, 0.15, 0.1, 0.05]))
    cement = tuple(str(v) for v in rng.choice(list(PATHOLOGY_LEVELS), size=n_cement, replace=False))
    discs = []
    for lv in rng.choice(CHAIN_LEVELS[3:10], size=int(rng.integers(0, 4)), replace=False):
        modic = str(rng.choice(MODIC, p=[0.7, 0.1, 0.2]))
        discs.append(DiscSpec(str(lv), height_frac=float(u(0.3, 0.6)), modic=modic))
    r = u()
    transitional = "sacralised_L5" if r < 0.025 else "lumbarised_S1" if r < 0.05 else "none"
    thick = float(u(3, 8) if sagittal else u(3, 6))
    # lordosis follows the sacral slope (pelvic balance): L1 ends up about vertical or tilted back
    sacral_slope = float(u(30, 50))
    fat = float(u(8, 50))  # subcutaneous fat (mm): the habitus sets the trunk size too
    lordosis = float(np.clip(sacral_slope + u(-5, 20), 20, 60))
    acquisition = _draw_acquisition(rng, sagittal, thick, maps)
    spine = _draw_spine(rng)
    tissues = _draw_tissues(rng, fat)
    return WorldSpec(
        seed=int(seed),
        orientation="sagittal" if sagittal else "axial",
        field_strength_t=field,
        snr=snr,
        slice_thickness_mm=thick,
        maps=maps,
        lordosis_deg=lordosis,
        sacral_slope_deg=sacral_slope,
        transitional=transitional,
        fractures=fractures,
        cement_levels=cement,
        discs=tuple(discs),
        subcut_fat_mm=fat,
        **acquisition,
        **spine,
        **tissues,
    )


def _draw_fractures(rng: np.random.Generator) -> tuple[FractureSpec, ...]:
    """0-3 fractured levels among :data:`PATHOLOGY_LEVELS`, acute ones with oedema."""
    u = rng.uniform
    fractures = []
    size = rng.choice(4, p=[0.45, 0.3, 0.17, 0.08])
    for lv in rng.choice(list(PATHOLOGY_LEVELS), size=size, replace=False):
        acute = bool(u() < 0.6)
        fractures.append(
            FractureSpec(
                level=str(lv),
                shape=str(rng.choice(FRACTURE_SHAPES)),
                height_loss_frac=float(u(0.2, 0.6)),
                acute=acute,
                oedema_pct=float(u(10, 30)) if acute else 0.0,
            )
        )
    return tuple(fractures)


def _draw_acquisition(
    rng: np.random.Generator, sagittal: bool, thick: float, maps: str
) -> dict[str, Any]:
    """Field of view, pixel size, slice gap and count, coverage, obliquity, coil shading and
    whether the vendor masked the maps."""
    u = rng.uniform
    return {
        "fov_mm": float(u(280, 360) if sagittal else u(340, 440)),
        "pixel_mm": float(u(0.7, 2.0) if sagittal else u(1.2, 2.0)),
        "slice_gap_mm": float(u(0, 0.3 * thick)) if sagittal else 0.0,
        "n_slices": int(rng.integers(10, 31)),
        "top_level": str(rng.choice(CHAIN_LEVELS[:5], p=[0.1, 0.15, 0.25, 0.3, 0.2])),
        "bottom_level": str(rng.choice(CHAIN_LEVELS[9:12], p=[0.2, 0.4, 0.4])),
        "top_margin_mm": float(u(-15, 15)),
        "bottom_margin_mm": float(u(-15, 15)),
        "fov_shift_mm": (float(u(-12, 12)), float(u(-20, 20)), float(u(-20, 20))),
        "oblique_deg": float(rng.normal(0, 3)),
        "coil_shading_frac": float(u(0.0, 0.6)),
        "vendor_mask": bool(maps == "pdff+r2s" and u() < 0.4),
    }


def _draw_spine(rng: np.random.Generator) -> dict[str, Any]:
    """Body size, curvature (kyphosis, scoliosis), the spine's offset and rotation, last rib."""
    u = rng.uniform
    return {
        "body_scale": float(u(0.85, 1.15)),
        "thoracic_kyphosis_deg": float(u(5, 30)),
        "junction_kyphosis_deg": float(u(5, 20)) if u() < 0.2 else 0.0,
        "scoliosis_cobb_deg": float(u(-20, 20)) if u() < 0.35 else float(u(-4, 4)),
        "scoliosis_apex": str(rng.choice(("T12", "L1", "L2", "L3"))),
        "spine_offset_mm": (float(u(-15, 15)), float(u(-10, 10))),
        "spine_rotation_deg": (
            float(rng.normal(0, 2)),
            float(rng.normal(0, 2)),
            float(rng.normal(0, 3)),
        ),
        "last_rib_level": str(rng.choice(("T11", "T12", "L1"), p=[0.06, 0.9, 0.04])),
    }


def _draw_tissues(rng: np.random.Generator, fat: float) -> dict[str, Any]:
    """Marrow values, focal findings (haemangiomas, Schmorl nodes, osteophytes), the trunk and
    the abdomen; ``fat`` (mm of subcutaneous fat) sets the trunk size."""
    u = rng.uniform

    def pick(p: float, k: int = 2) -> tuple[str, ...]:
        n = int(rng.integers(1, k + 1)) if u() < p else 0
        return tuple(str(v) for v in rng.choice(list(PATHOLOGY_LEVELS), size=n, replace=False))

    return {
        "marrow_pdff_pct": float(u(25, 70)),
        "level_pdff_sd_pct": float(u(1, 4)),
        "marrow_r2s_per_s": float(u(40, 120)),
        "texture_sd_pct": float(u(1, 3)),
        "rim_drop_pct": float(u(4, 8)),
        "haemangioma_levels": pick(0.3),
        "schmorl_levels": pick(0.2),
        "osteophyte_levels": pick(0.3, 3),
        "trunk_ap_mm": min(170 + 2.2 * fat + float(u(0, 50)), 380.0),
        "trunk_lr_mm": float(u(280, 330)) + fat,
        "paraspinal_pdff_pct": float(u(3, 15)),
        "liver_pdff_pct": float(u(2, 20)),
        "liver_r2s_per_s": float(u(30, 60)),
        "mesentery_pdff_pct": float(u(80, 95)),
        "n_bowel_loops": int(rng.integers(2, 12)),
        "bowel_gas_frac": float(u(0.1, 0.8)),
        "n_fat_blobs": int(rng.integers(0, 4)),
    }


def world_set(name: str, n: int | None = None) -> list[WorldSpec]:
    """Specs of a named set: "dev" (seeds 0..n-1, default 20) or "test" (the frozen
    :data:`TEST_SEEDS`, first ``n``). Each spec is drawn from ``default_rng(seed)``."""
    if name == "dev":
        seeds: tuple[int, ...] = tuple(range(20 if n is None else int(n)))
    elif name == "test":
        seeds = TEST_SEEDS if n is None else TEST_SEEDS[: int(n)]
    else:
        raise InputError("world_set.name", f"{name!r} is not 'dev' or 'test'")
    return [random_world_spec(np.random.default_rng(s), s) for s in seeds]


def spec_fields() -> tuple[str, ...]:
    """Names of all :class:`WorldSpec` options (for tables)."""
    return tuple(f.name for f in fields(WorldSpec))
