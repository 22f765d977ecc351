"""Synthetic IDEAL-IQ spine studies with ground truth (tests, demo, benchmarks).

from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
ph = generate_phantom(PhantomSpec(seed=3, fractured={"L1": 0.3}, snr=40))
ph.study.pdff, ph.truth.body_labels, ph.truth.level_table()
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
