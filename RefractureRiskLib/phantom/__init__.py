"""Synthetic IDEAL-IQ spine studies with ground truth (tests, demo, benchmarks).

Usage::

    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom

    ph = generate_phantom(PhantomSpec(seed=3, fractured={"L1": 0.3}, snr=40))
    ph.study.pdff            # Volume, percent; also water, fat, in_phase, out_phase, r2s (1/s)
    ph.truth.body_labels     # int16 Volume: T10=1 .. L5=8, S1=9
    ph.truth.level_table()   # one row per level: true core marrow PDFF/R2*, size, flags
    ph.truth.core_mask("L3") # voxels wholly in L3's core marrow (exact true values)

Modules: ``spec`` (options), ``anatomy`` (sizes, spine curve, body shape), ``tissues`` (tissue
values and marrow draws), ``grid`` (acquisition grid), ``raster`` (painting with partial
volume), ``signal`` (maps, noise, bias field), ``truth`` (ground-truth types), ``generate``.
"""

from RefractureRiskLib.phantom.generate import generate_phantom
from RefractureRiskLib.phantom.spec import PhantomSpec
from RefractureRiskLib.phantom.truth import PhantomLevel, PhantomStudy, PhantomTruth, Tissue

__all__ = [
    "PhantomLevel",
    "PhantomSpec",
    "PhantomStudy",
    "PhantomTruth",
    "Tissue",
    "generate_phantom",
]
