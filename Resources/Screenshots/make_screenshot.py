"""Make the extension's screenshot honestly: the synthetic phantom with its ROIs and risk.

Slicer cannot run on the machines this project is built on, so this is NOT a Slicer screen
capture. It is a matplotlib rendering, labelled as such, of what the module shows, computed by the
same library calls the module's logic makes: the phantom (seed 0), one point per level at the
true body centres -> ``rois_from_points`` and QC, per-level statistics, the patient summary and the
risk of the bundled demonstration model for a typical patient, PDFF on the module's colour map.

Run: ``python Resources/Screenshots/make_screenshot.py`` (writes RefractureRisk-phantom-rois.png).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LinearSegmentedColormap

from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
from RefractureRiskLib.model.scoring import score
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.pipeline import model_inputs
from RefractureRiskLib.report.reformat import sagittal_plane
from RefractureRiskLib.roi.manual import rois_from_points
from RefractureRiskLib.roi.qc import apply_qc
from RefractureRiskLib.stats import roi_statistics, summarize_statistics

OUT = Path(__file__).resolve().parent / "RefractureRisk-phantom-rois.png"
INDEX_LEVELS = ("L1",)
#: Clinical inputs of the illustrated (synthetic) patient.
PATIENT = {"age_years": 74.0, "sex": "F", "dxa_l1l4_tscore": -2.8}
#: The module's PDFF colour map (RefractureRisk.pdffColor): 0 % dark blue -> 100 % yellow.
PDFF_CMAP = LinearSegmentedColormap.from_list(
    "pdff",
    [
        (0.0, (0.05, 0.03, 0.35)),
        (0.35, (0.1, 0.45, 0.75)),
        (0.65, (0.45, 0.8, 0.35)),
        (1.0, (1.0, 0.92, 0.2)),
    ],
)


def main() -> None:
    phantom = generate_phantom(PhantomSpec(seed=0))
    study = phantom.study
    points = {lv.level: lv.centre_ras for lv in phantom.truth.levels if lv.level != "S1"}
    rois = apply_qc(
        rois_from_points(study, points, reader="screenshot", index_levels=INDEX_LEVELS),
        study,
        INDEX_LEVELS,
    )
    stats = roi_statistics(rois.roiset, study)
    summary = summarize_statistics(stats, INDEX_LEVELS)
    model = load_model(bundled_model_path())
    risk = score(model, model_inputs(model, PATIENT, summary))

    x_mid = float(np.mean([p[0] for p in points.values()]))
    pdff = sagittal_plane(study.pdff, x_mid)
    labels = sagittal_plane(rois.roiset.labelmap, x_mid, labels=True)

    fig, (ax, side) = plt.subplots(
        1, 2, figsize=(9.6, 6.4), dpi=100, gridspec_kw={"width_ratios": [1.15, 1]}
    )
    fig.patch.set_facecolor("#20232a")
    shown = ax.imshow(
        pdff.image, extent=pdff.extent_mm, cmap=PDFF_CMAP, vmin=0, vmax=100, origin="upper"
    )
    means = {r.level: r.mean for r in stats.itertuples() if r.map == "pdff"}
    for lv in rois.roiset.levels:
        mask = labels.image == lv.label
        if not mask.any():
            continue
        colour = "magenta" if "index" in {str(f) for f in lv.flags} else "white"
        ax.contour(
            mask.astype(float),
            levels=[0.5],
            extent=pdff.extent_mm,
            origin="upper",
            colors=colour,
            linewidths=1.2,
        )
        rows, cols = np.nonzero(mask)
        col = cols.min()
        x0, x1, y0, y1 = pdff.extent_mm
        x = x0 + (x1 - x0) * col / mask.shape[1]
        y = y1 - (y1 - y0) * rows.mean() / mask.shape[0]
        ax.text(
            x - 4,
            y,
            f"{lv.level} {means.get(lv.level, float('nan')):.0f}%",
            color=colour,
            fontsize=8,
            ha="right",
            va="center",
        )
    ax.set_xlabel("anterior <-  (mm)  -> posterior", color="w")
    ax.set_ylabel("S (mm)", color="w")
    ax.tick_params(colors="w", labelsize=7)
    cbar = fig.colorbar(shown, ax=ax, fraction=0.04, pad=0.02)
    cbar.set_label("PDFF (%)", color="w")
    cbar.ax.tick_params(colors="w", labelsize=7)
    ax.set_title("Synthetic phantom: PDFF, mid-sagittal, ROIs per level", color="w", fontsize=10)

    side.axis("off")
    if risk.interval is not None:
        interval = f"95% interval {100 * risk.interval[0]:.1f}-{100 * risk.interval[1]:.1f}%"
    else:
        interval = "no 95% interval: " + textwrap.shorten(risk.interval_note, 60)
    lines = [
        f"Re-fracture risk ({risk.horizon_days} days): {100 * risk.probability:.1f}%",
        *textwrap.wrap(interval, 44),
        *textwrap.wrap(f"Model: {risk.model_name}", 44),
        "",
        f"Global L1-L4 PDFF: {summary.pdff_global_L1L4_pct:.1f}%",
        f"Global L1-L4 R2*: {summary.r2s_global_L1L4_per_s:.1f} 1/s",
        f"Adjacent to {', '.join(INDEX_LEVELS)} PDFF: {summary.pdff_adjacent_pct:.1f}%",
        "",
        "Contributions (log-odds):",
        *[
            f"  {textwrap.shorten(c.label or c.term, 34):34} {c.log_odds:+.2f}"
            for c in risk.contributions
        ],
    ]
    side.text(
        0.0,
        0.98,
        "\n".join(lines),
        color="w",
        fontsize=9,
        va="top",
        family="monospace",
        transform=side.transAxes,
    )
    if not risk.validated:
        warning = "Demonstration model: not validated,\nnot for clinical use."
        side.text(0.0, 0.06, warning, color="#ff6a3d", fontsize=10, weight="bold",
                  va="bottom", transform=side.transAxes)  # fmt: skip
    caption = (
        "Rendering (matplotlib) of the RefractureRisk module's results on synthetic data"
        " - not a Slicer screen capture"
    )
    fig.text(0.5, 0.01, caption, color="#aaaaaa", fontsize=8, ha="center")
    fig.savefig(OUT, facecolor=fig.get_facecolor())
    plt.close(fig)


if __name__ == "__main__":
    main()
