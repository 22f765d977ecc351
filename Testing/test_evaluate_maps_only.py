"""The paired maps-only evaluation (evaluation/evaluate_maps_only.py): each maps-only study is
the same study as its every-map twin but for the export, and the table counts both."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluation"))

from auto_roi_cases import maps_only_pairs
from evaluate_maps_only import main


def test_a_pair_differs_only_in_what_the_export_holds() -> None:
    pairs = list(maps_only_pairs("world", "dev", 5))
    assert pairs  # seeds 3 and 4 of the world development set are maps-only exports
    for only, full in pairs:
        assert only.name == full.name
        assert sorted(only.study.maps) == ["pdff", "r2s"]
        assert {"water", "fat", "pdff", "r2s"} <= set(full.study.maps)
        np.testing.assert_array_equal(only.truth.body_labels.array, full.truth.body_labels.array)
        for kind in ("pdff", "r2s"):
            a, b = only.study.maps[kind].array, full.study.maps[kind].array
            differ = a != b
            assert not differ.any() or not a[differ].any()  # at most the vendor's mask (0)


def test_the_table_counts_every_pair(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--set", "dev", "--source", "world", "--n", "5", "--verbose"]) == 0
    out = capsys.readouterr().out
    n = len(list(maps_only_pairs("world", "dev", 5)))
    assert out.count("every map ") == n + 1  # one line per pair and the table's row
    assert f"| maps-only | {n} |" in out and f"| every map | {n} |" in out


def test_an_unknown_set_is_refused() -> None:
    with pytest.raises(ValueError, match="set must be"):
        next(maps_only_pairs("world", "train"))
