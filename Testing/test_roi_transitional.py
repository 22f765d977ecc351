"""Lumbosacral transitional anatomy: the phantom builds it, the automatic labels report it.

A sacralised L5 (rudimentary L5/S1 disc) or a lumbarised S1 (a well-formed S1/S2 disc, six
mobile segments above the sacrum) makes counting up from the sacrum unreliable: the automatic
method must label every level right or say it is uncertain because of transitional anatomy,
and one anchor point must fix every label.
"""

from __future__ import annotations

import numpy as np
import pytest

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_label
from RefractureRiskLib.phantom import anatomy as an
from RefractureRiskLib.phantom.generate import generate_phantom
from RefractureRiskLib.phantom.spec import TRANSITIONAL_KINDS, PhantomSpec
from RefractureRiskLib.phantom.truth import PhantomStudy, Tissue
from RefractureRiskLib.roi.auto import Anchor, automatic_rois

SEED = 21


def _spec(transitional: str | None, **kw) -> PhantomSpec:
    base = {"seed": SEED, "in_plane_spacing_mm": 2.0, "snr": 30.0}
    return PhantomSpec(transitional=transitional, **{**base, **kw})


@pytest.fixture(scope="module")
def phantoms() -> dict[str | None, PhantomStudy]:
    return {kind: generate_phantom(_spec(kind)) for kind in (None, *TRANSITIONAL_KINDS)}


def _tissue_run_mm(ph: PhantomStudy, upper: str, lower: str, tissue: Tissue) -> float:
    """Length (mm) of ``tissue`` on the straight line between two bodies' true centres,
    sampled every 0.1 mm on the truth's tissue map (nearest voxel)."""
    p0 = np.array(ph.truth.level(upper).centre_ras)
    p1 = (
        np.array(ph.truth.level(lower).centre_ras)
        if lower in VERTEBRAL_LEVELS
        else _below(ph, upper)
    )
    n = int(np.linalg.norm(p1 - p0) / 0.1) + 1
    pts = np.linspace(p0, p1, n)
    grid = ph.truth.tissue
    ijk = np.rint(np.c_[pts, np.ones(n)] @ np.linalg.inv(grid.ijk_to_ras).T)[:, :3].astype(int)
    arr = grid.array
    inside = np.all((ijk >= 0) & (ijk < np.array(arr.shape[::-1])), axis=1)
    i, j, k = ijk[inside].T
    return float(np.count_nonzero(arr[k, j, i] == tissue) * np.linalg.norm(p1 - p0) / (n - 1))


def _below(ph: PhantomStudy, level: str) -> np.ndarray:
    """A point 45 mm caudal of ``level``'s centre along its axis (reaches the next body)."""
    lv = ph.truth.level(level)
    return np.array(lv.centre_ras) - 45.0 * np.array(lv.superior_ras)


def _labels_right(ph: PhantomStudy, result) -> bool:
    """Every placed level's ROI lies in the true body of that level, and all nine are placed."""
    truth = ph.truth.body_labels.array
    right = [
        bool(np.all(truth[result.roiset.mask(lv)] == level_label(lv)))
        for lv in result.roiset.level_names
    ]
    return len(right) == len(VERTEBRAL_LEVELS) and all(right)


def test_unknown_transitional_kind_is_refused() -> None:
    with pytest.raises(InputError) as err:
        PhantomSpec(transitional="sacralized")
    msg = str(err.value)
    assert "transitional" in msg and "sacralised_L5" in msg and "lumbarised_S1" in msg
    # case and surrounding spaces are forgiven, the canonical name is kept
    assert PhantomSpec(transitional=" Lumbarised_s1 ").transitional == "lumbarised_S1"
    assert PhantomSpec().transitional is None
    assert PhantomSpec(seed=3) == PhantomSpec(seed=3, transitional=None)


def test_normal_anatomy_is_unchanged_by_the_option() -> None:
    dims = {name: (1.0, 2.0, 3.0, 4.0) for name in an.ALL_BODIES}
    assert an.transitional_dims(dims, None) is dims
    for kind in TRANSITIONAL_KINDS:
        changed = an.transitional_dims(dims, kind)
        assert dims == {name: (1.0, 2.0, 3.0, 4.0) for name in an.ALL_BODIES}  # not mutated
        assert all(changed[n] == dims[n] for n in an.ALL_BODIES[: an.ALL_BODIES.index("L5")])


def test_truth_stays_anatomical(phantoms) -> None:
    normal = phantoms[None].truth
    for kind in TRANSITIONAL_KINDS:
        truth = phantoms[kind].truth
        assert tuple(truth.level_table()["level"]) == VERTEBRAL_LEVELS
        labels = set(np.unique(truth.body_labels.array)) - {0}
        assert labels == {level_label(lv) for lv in VERTEBRAL_LEVELS}
        # T10-L4 are the same bodies as in the normal spine of the same seed
        for name in VERTEBRAL_LEVELS[:7]:
            a, b = normal.level(name), truth.level(name)
            assert (a.width_mm, a.depth_mm, a.nominal_height_mm) == (
                b.width_mm,
                b.depth_mm,
                b.nominal_height_mm,
            )


def test_sacralised_l5_has_a_rudimentary_disc(phantoms) -> None:
    normal, sacral = phantoms[None], phantoms["sacralised_L5"]
    l4_l5 = _tissue_run_mm(sacral, "L4", "L5", Tissue.DISC)
    l5_s1 = _tissue_run_mm(sacral, "L5", "S1", Tissue.DISC)
    assert l4_l5 > 8.0
    assert l5_s1 < 0.5 * l4_l5  # rudimentary, as the S1/S2 junction
    assert _tissue_run_mm(normal, "L5", "S1", Tissue.DISC) > 0.8 * l4_l5
    # L5 shaped towards S1: its size lies between the normal L5 and S1
    l5, n5, n1 = (t.truth.level(lv) for t, lv in ((sacral, "L5"), (normal, "L5"), (normal, "S1")))
    assert min(n5.width_mm, n1.width_mm) < l5.width_mm < max(n5.width_mm, n1.width_mm)


def test_lumbarised_s1_has_a_well_formed_disc_and_sacrum_below(phantoms) -> None:
    normal, lumbar = phantoms[None], phantoms["lumbarised_S1"]
    l5_s1 = _tissue_run_mm(lumbar, "L5", "S1", Tissue.DISC)
    s1_s2 = _tissue_run_mm(lumbar, "S1", "below", Tissue.DISC)
    assert s1_s2 > 0.6 * l5_s1  # well formed, not the normal rudimentary S1/S2 junction
    assert _tissue_run_mm(normal, "S1", "below", Tissue.DISC) < 0.5 * l5_s1
    # the sacrum (unlabelled vertebra) lies below S1 and inside the field of view
    assert _tissue_run_mm(lumbar, "S1", "below", Tissue.OTHER_VERTEBRA) > 15.0


@pytest.mark.parametrize(
    ("kind", "orientation"),
    [("sacralised_L5", "sagittal"), ("lumbarised_S1", "sagittal"), ("lumbarised_S1", "axial")],
)
def test_automatic_labels_right_or_transitional_and_anchor_fixes(
    kind: str, orientation: str, phantoms
) -> None:
    if orientation == "sagittal":
        ph = phantoms[kind]
    else:
        ph = generate_phantom(_spec(kind, orientation="axial", slice_thickness_mm=3.0))
    res = automatic_rois(ph.study)
    if not _labels_right(ph, res):
        assert res.uncertain
        assert any("transitional anatomy" in r for r in res.reasons), res.reasons
    anchored = automatic_rois(ph.study, anchor=Anchor("L3", ph.truth.level("L3").centre_ras))
    assert _labels_right(ph, anchored)


def test_normal_spine_reports_no_transitional_anatomy(phantoms) -> None:
    ph = phantoms[None]
    res = automatic_rois(ph.study)
    assert _labels_right(ph, res)
    assert not any("transitional" in r for r in res.reasons), res.reasons
