"""Studies with level truth for the automatic-ROI evaluation, split into development and test sets.

Three independent sources, each a :class:`~RefractureRiskLib.phantom.truth.LabelledStudy`:

- ``phantom``: the project's own phantom (:mod:`RefractureRiskLib.phantom`), random specs;
- ``world``: the independent "world" generator (:mod:`RefractureRiskLib.phantom.world`): a
  real lumbar field of view with bowel, vessels, kidneys, degenerated discs, partial coverage,
  thick slices, maps-only exports;
- ``realct``: IDEAL-IQ-like studies built from a REAL labelled CT (real shapes, curvature and
  neighbouring organs; :mod:`RefractureRiskLib.phantom.realct`), read from
  ``../shared/data/realspine`` (skipped with a message when absent).

Each source has a development set (seeds from 0, used while tuning) and a frozen test set
(fixed seeds never used while tuning). Only the test set's figures are reported in
``docs/auto_roi_evaluation.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS
from RefractureRiskLib.phantom.generate import generate_phantom
from RefractureRiskLib.phantom.spec import TRANSITIONAL_KINDS, PhantomSpec
from RefractureRiskLib.phantom.truth import LabelledStudy

SOURCES: tuple[str, ...] = ("phantom", "world", "realct")
#: Frozen test seeds of the project's phantom (never used while tuning).
PHANTOM_TEST_SEEDS: tuple[int, ...] = tuple(range(3_000_000, 3_000_040))
REALSPINE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "realspine"

LUMBAR_THORACIC = VERTEBRAL_LEVELS[:-1]  # levels that can be fractured/cemented (not S1)


def random_phantom_spec(rng: np.random.Generator, seed: int) -> PhantomSpec:
    """One random phantom study: acquisition, anatomy, pathologies, sometimes transitional."""
    levels = list(LUMBAR_THORACIC)
    n_frac = int(rng.choice([0, 1, 1, 2]))
    frac_levels = rng.choice(levels, size=n_frac, replace=False).tolist()
    fractured = {str(lv): float(rng.uniform(0.2, 0.5)) for lv in frac_levels}
    rest = [lv for lv in levels if lv not in fractured]
    cemented = tuple(str(x) for x in rng.choice(rest, size=int(rng.integers(0, 2)), replace=False))
    rest = [lv for lv in rest if lv not in cemented]
    lesion = str(rng.choice(rest)) if rng.random() < 0.3 else None
    snr = None if rng.random() < 0.2 else float(rng.uniform(8.0, 40.0))
    spec = PhantomSpec(
        seed=seed,
        orientation=str(rng.choice(["sagittal", "axial"])),
        field_strength_t=float(rng.choice([1.5, 3.0])),
        slice_thickness_mm=float(rng.choice([1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0])),
        fractured=fractured,
        cemented=cemented,
        lesion_level=lesion,
        snr=snr,
        bias_field=float(rng.uniform(0.0, 0.4)),
        lordosis_deg=float(rng.uniform(10.0, 50.0)),
        scoliosis_deg=float(rng.uniform(-15.0, 15.0)),
    )
    if rng.random() < 0.1:
        spec = replace(spec, transitional=str(rng.choice(TRANSITIONAL_KINDS)))
    return spec


def snr_bin(snr: float | None) -> str:
    if snr is None:
        return "noiseless"
    return "5-10" if snr < 10 else "10-20" if snr < 20 else "20-50"


def _phantom_cases(set_name: str, n: int | None) -> Iterator[LabelledStudy]:
    seeds = list(range(n or 40)) if set_name == "dev" else list(PHANTOM_TEST_SEEDS[:n])
    for seed in seeds:
        spec = random_phantom_spec(np.random.default_rng([seed, 11]), seed)
        ph = generate_phantom(spec)
        path = "none"
        if spec.fractured:
            path = "fracture"
        if spec.cemented:
            path = "cement" if path == "none" else path + "+cement"
        conditions = {
            "orientation": spec.orientation,
            "field": f"{spec.field_strength_t:g}T",
            "snr": snr_bin(spec.snr),
            "slice": "1-2mm" if spec.slice_thickness_mm <= 2 else "2.5-4mm",
            "maps": "all",
            "pathology": path,
            "transitional": spec.transitional or "none",
        }
        yield LabelledStudy(f"phantom-{set_name}-{seed}", ph.study, ph.truth, conditions)


def _world_cases(set_name: str, n: int | None) -> Iterator[LabelledStudy]:
    from RefractureRiskLib.phantom.world import generate_world, world_set

    for spec in world_set(set_name, n):
        case = generate_world(spec)
        yield replace(case, name=f"world-{set_name}-{spec.seed}")


def _real_ct():  # -> RealCtCase | None (imported lazily: the real CT is optional)
    """The real labelled CT the realct studies are built from; None (said once) when absent."""
    from RefractureRiskLib.phantom.realct import load_realspine_case

    root = REALSPINE.resolve()
    if not root.is_dir():
        print(f"realct: skipped, {root} is absent (the real labelled CT is not on this machine)")
        return None
    return load_realspine_case(root)


def _realct_cases(set_name: str, n: int | None) -> Iterator[LabelledStudy]:
    from RefractureRiskLib.phantom.realct import realct_set, study_from_ct

    ct = _real_ct()
    if ct is None:
        return
    for spec in realct_set(set_name, n):
        case = study_from_ct(ct, spec)
        yield replace(case, name=f"realct-{set_name}-{spec.seed}")


def maps_only_pairs(
    source: str, set_name: str, n: int | None = None
) -> Iterator[tuple[LabelledStudy, LabelledStudy]]:
    """Each maps-only study of a set (world and realct; the phantom exports every map) with the
    same study exported with every map: same seed, anatomy, acquisition and noise draws, so the
    two differ only in what the export holds (the world generator's maps-only exports may also
    be vendor-masked: background set to 0)."""
    if set_name not in ("dev", "test"):
        raise ValueError(f"set must be 'dev' or 'test', got {set_name!r}")
    if source == "world":
        from RefractureRiskLib.phantom.world import generate_world, world_set

        for spec in world_set(set_name, n):
            if spec.maps == "pdff+r2s":
                name = f"world-{set_name}-{spec.seed}"
                full = replace(spec, maps="all", vendor_mask=False)
                yield (
                    replace(generate_world(spec), name=name),
                    replace(generate_world(full), name=name),
                )
    elif source == "realct":
        from RefractureRiskLib.phantom.realct import realct_set, study_from_ct

        ct = _real_ct()
        if ct is None:
            return
        for spec in realct_set(set_name, n):
            if spec.maps_only:
                name = f"realct-{set_name}-{spec.seed}"
                yield (
                    replace(study_from_ct(ct, spec), name=name),
                    replace(study_from_ct(ct, replace(spec, maps_only=False)), name=name),
                )


def cases(source: str, set_name: str, n: int | None = None) -> Iterator[LabelledStudy]:
    """The studies of one source and set ("dev" or "test"); ``n`` limits their number."""
    if set_name not in ("dev", "test"):
        raise ValueError(f"set must be 'dev' or 'test', got {set_name!r}")
    make = {"phantom": _phantom_cases, "world": _world_cases, "realct": _realct_cases}[source]
    yield from make(set_name, n)
