"""A body segmented around a point that ran on into neighbouring tissue (at T10-T11 a fatty
liver passes the marrow criteria) is searched again inside a vertebral cross-section about the
point (``roi/seeded.py``). Development-set world studies only (``world_set("dev")``)."""

from __future__ import annotations

import numpy as np
import pytest

from RefractureRiskLib.phantom.world import generate_world, world_set
from RefractureRiskLib.roi.body import study_arrays
from RefractureRiskLib.roi.manual import rois_from_points
from RefractureRiskLib.roi.seeded import LEAK_HALF_MM, SEED_OFF_CENTRE_MM, place_at_seed


@pytest.fixture(scope="module")
def liver_world():
    # sagittal 6-8 mm, SNR 10-20: segmented from its point alone, T10's and T11's "body" ran
    # on into the liver (about 65 x 45 mm, centred 23 mm off the point) before the guard
    (spec,) = [s for s in world_set("dev", 19) if s.seed == 18]
    return generate_world(spec)


def test_leaked_body_is_searched_again_about_the_point(liver_world):
    arrays = study_arrays(liver_world.study)
    labels = liver_world.truth.body_labels.array
    for level in ("T10", "T11"):
        (tl,) = [t for t in liver_world.truth.levels if t.level == level]
        placed = place_at_seed(arrays, tl.centre_ras)
        assert placed.frame is not None, placed.message
        lr, ap, _ = placed.frame.half_extent_mm
        assert lr <= LEAK_HALF_MM[0] and ap <= LEAK_HALF_MM[1], (level, lr, ap)
        off = np.asarray(placed.frame.centre_ras) - np.asarray(tl.centre_ras)
        assert np.linalg.norm(off[:2]) <= SEED_OFF_CENTRE_MM, (level, off)
        under = labels[placed.box.slices][placed.roi]
        assert under.size and np.mean(under == tl.label) > 0.8, (level, np.unique(under))


def test_every_point_roi_lies_in_its_body(liver_world):
    """Every ROI placed from a point lies mostly in that level's body."""
    whole = [t for t in liver_world.truth.levels if not t.truncated]
    res = rois_from_points(liver_world.study, {t.level: t.centre_ras for t in whole})
    labels = liver_world.truth.body_labels.array
    by_name = {lr.level: lr for lr in res.roiset.levels}
    measured = 0
    for t in whole:
        under = labels[res.roiset.labelmap.array == by_name[t.level].label]
        if not under.size:  # a crushed body too small for a safe core: no ROI, no wrong one
            continue
        vals, counts = np.unique(under, return_counts=True)
        assert int(vals[np.argmax(counts)]) == t.label, (t.level, vals, counts)
        measured += 1
    assert measured >= len(whole) - 1
