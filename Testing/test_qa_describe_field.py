"""QA regression: R2* scatter plots of a 1.5 T + 3 T cohort show one line and r per field."""

from __future__ import annotations

import numpy as np
import pandas as pd

from RefractureRiskLib.model.dev import describe


def _cohort(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tscore = rng.normal(-2.5, 1.0, n)
    field = np.where(rng.random(n) < 0.5, 1.5, 3.0)
    # Within each field R2* tracks the T-score closely; 3 T doubles it.
    r2s = (70 + 8 * tscore + rng.normal(0, 3, n)) * (field / 1.5)
    return pd.DataFrame(
        {
            "r2s_global_L1L4": r2s,
            "dxa_l1l4_tscore": tscore,
            "mri_field_T": field,
            "sex": rng.choice(["F", "M"], n),
            "age_years": rng.uniform(55, 90, n),
        }
    )


def test_r2s_scatter_is_split_by_field_strength(tmp_path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    titles: dict[str, list[str]] = {}
    real_savefig = Figure.savefig

    def keep_titles(fig, *args, **kwargs):
        for ax in fig.axes:
            titles[ax.get_xlabel()] = [ax.get_title()]
        return real_savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep_titles)
    paths = describe.scatter_plots(_cohort(), tmp_path)
    assert any(p.name == "scatter_r2s_global_L1L4.png" for p in paths)
    title = titles["dxa_l1l4_tscore"][0]
    assert "1.5 T" in title and "3 T" in title
    rs = [float(part.split("r = ")[1].split(" ")[0]) for part in title.split(";")]
    # Each within-field r is strong; a pooled r would be diluted by the 2x scale difference.
    assert all(r > 0.8 for r in rs)
