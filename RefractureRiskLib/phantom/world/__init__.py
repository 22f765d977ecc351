"""A second, independent synthetic world of sagittal/axial IDEAL-IQ-like lumbar studies.

Unlike ``RefractureRiskLib.phantom`` (an idealised spine in a simple trunk), the world builds
the spine T8..S3 as its own chain with posterior elements, ribs, sacrum and pelvis, in a trunk
with viscera, vessels and bowel (gas, fat-mixed contents), and acquires it with partial volume,
coil shading and Rician noise. It shares only the core types and the truth types.

Usage::

    from RefractureRiskLib.phantom.world import generate_world, world_set

    for spec in world_set("dev", 5):
        ls = generate_world(spec)   # LabelledStudy: .study, .truth, .conditions

Modules: ``spec`` (options, random draws, seed sets), ``chain`` (spine curve and body frames),
``bodies`` (body and disc shapes), ``tissues`` (materials), ``canvas`` (fine grid, primitives),
``skeleton`` and ``trunk`` (painting), ``acquire`` (grid, signal, noise), ``generate``.
"""

from RefractureRiskLib.phantom.world.generate import generate_world
from RefractureRiskLib.phantom.world.spec import (
    TEST_SEEDS,
    DiscSpec,
    FractureSpec,
    WorldSpec,
    random_world_spec,
    world_set,
)

__all__ = [
    "TEST_SEEDS",
    "DiscSpec",
    "FractureSpec",
    "WorldSpec",
    "generate_world",
    "random_world_spec",
    "world_set",
]
