"""Draw the 128x128 extension/module icon: a lumbar spine in sagittal view, bodies coloured by PDFF.

Run ``python Resources/Icons/make_icon.py`` (needs matplotlib). It writes
``Resources/Icons/RefractureRisk.png`` and the module's copy in ``RefractureRisk/Resources/Icons``.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyBboxPatch, Wedge

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUTPUTS = (
    HERE / "RefractureRisk.png",
    ROOT / "RefractureRisk" / "Resources" / "Icons" / "RefractureRisk.png",
)
SIZE_PX = 128

#: PDFF (%) of the drawn bodies, cranial to caudal; the fourth is the cemented (treated) level.
BODY_PDFF_PCT = (38.0, 45.0, 52.0, None, 60.0)


def pdff_rgb(pdff_pct: float) -> tuple[float, float, float]:
    """Same colour map as the module: 0 % dark blue -> 100 % yellow (piecewise linear)."""
    anchors = (
        (0.0, (0.05, 0.03, 0.35)),
        (0.35, (0.1, 0.45, 0.75)),
        (0.65, (0.45, 0.8, 0.35)),
        (1.0, (1.0, 0.92, 0.2)),
    )
    t = min(max(pdff_pct / 100.0, 0.0), 1.0)
    for (t0, c0), (t1, c1) in itertools.pairwise(anchors):
        if t <= t1:
            w = (t - t0) / (t1 - t0)
            return tuple(a + w * (b - a) for a, b in zip(c0, c1, strict=True))  # type: ignore[return-value]
    return anchors[-1][1]


def draw(path: Path) -> None:
    fig = plt.figure(figsize=(1, 1), dpi=SIZE_PX)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 128)
    ax.set_ylim(0, 128)
    ax.axis("off")
    ax.add_patch(
        FancyBboxPatch(
            (3, 3), 122, 122, boxstyle="round,pad=0,rounding_size=18", fc="#1d2433", ec="none"
        )
    )
    top, height, gap = 108.0, 15.0, 6.0
    for i, pdff in enumerate(BODY_PDFF_PCT):
        y = top - i * (height + gap) - height
        x = 22 + 3.0 * i  # a slight lordosis
        colour = "#e8e8e8" if pdff is None else pdff_rgb(pdff)
        ax.add_patch(
            FancyBboxPatch(
                (x, y),
                42,
                height,
                boxstyle="round,pad=0,rounding_size=4",
                fc=colour,
                ec="white",
                lw=1.2,
            )
        )
        ax.add_patch(
            FancyBboxPatch(
                (x + 47, y + 3),
                14,
                height - 6,
                boxstyle="round,pad=0,rounding_size=3",
                fc="#6b7690",
                ec="none",
            )
        )
        if pdff is None:  # cement in the treated body
            ax.add_patch(Circle((x + 21, y + height / 2), 5.0, fc="#9aa3b5", ec="none"))
    # risk gauge
    ax.add_patch(Wedge((100, 30), 22, 0, 180, width=7, fc="#3a4358", ec="none"))
    ax.add_patch(Wedge((100, 30), 22, 110, 180, width=7, fc="#ff6a3d", ec="none"))
    ax.plot([100, 84], [30, 42], color="white", lw=2.5, solid_capstyle="round")
    fig.savefig(path, dpi=SIZE_PX, transparent=True)
    plt.close(fig)


def main() -> None:
    draw(OUTPUTS[0])
    for copy in OUTPUTS[1:]:
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(OUTPUTS[0], copy)


if __name__ == "__main__":
    main()
