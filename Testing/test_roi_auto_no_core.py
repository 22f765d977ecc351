"""Automatic ROIs on bodies segmented whole but too small or thin for a safe core (cemented
levels of a world development study): the level is measured at the body's centre, inside its
own body, instead of being listed with an empty ROI (issue 10)."""

from __future__ import annotations

import numpy as np

from RefractureRiskLib.phantom.truth import Tissue
from RefractureRiskLib.roi.auto import automatic_rois
from Testing.world_cases import right_levels, world_dev


def test_a_cemented_body_without_a_safe_core_is_measured_at_its_centre():
    case = world_dev(73)  # T11 and L2 cemented: no safe core fits beside the cement
    result = automatic_rois(case.study)
    tb = case.truth.body_labels.array
    label = {tl.level: tl.label for tl in case.truth.levels}
    for lv in ("T11", "L2"):
        entry = result.placement(lv)
        assert any("marrow within" in n and "its centre" in n for n in entry.notes), entry.notes
        mask = result.roiset.mask(lv)
        assert mask.any()
        assert np.mean(tb[mask] == label[lv]) > 0.9
        marrow = np.isin(case.truth.tissue.array[mask], (Tissue.MARROW_CORE, Tissue.MARROW_RIM))
        assert np.mean(marrow) > 0.6
        assert np.isfinite(entry.roi_pdff_median_pct)
    assert all(right_levels(case, result).values())
