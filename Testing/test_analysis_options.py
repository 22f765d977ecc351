"""analyze and batch read their analysis settings through one builder (commands.options)."""

from __future__ import annotations

from pathlib import Path

import pytest

from RefractureRiskLib.cli import build_parser
from RefractureRiskLib.commands.options import analysis_options
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.pipeline import AnalysisOptions

SHARED = ["--reader", "JD", "--model", "m.json", "--pdff-unit", "percent", "--r2s-unit",
          "t2star_ms", "--missing", "range", "--export-dicom"]  # fmt: skip


def _options(argv: list[str]) -> AnalysisOptions:
    return analysis_options(build_parser().parse_args(argv))


def test_shared_arguments_mean_the_same_in_analyze_and_batch():
    one = _options(["analyze", "study", "--out", "o", *SHARED])
    many = _options(["batch", "root", "--clinical", "c.csv", "--out", "o", *SHARED])
    assert one == many
    assert one.reader == "JD" and one.model_path == Path("m.json")
    assert (one.pdff_unit, one.r2s_unit, one.missing) == ("percent", "t2star_ms", "range")
    assert one.export_dicom and one.report


def test_defaults_and_command_specific_arguments():
    assert _options(["analyze", "study", "--out", "o"]) == AnalysisOptions()
    assert _options(["batch", "root", "--clinical", "c.csv", "--out", "o"]) == AnalysisOptions()
    assert not _options(["batch", "r", "--clinical", "c.csv", "--out", "o", "--no-report"]).report
    given = _options(
        ["analyze", "s", "--out", "o", "--roi", "p.json", "--anchor", "l3:1,2,3",
         "--index-levels", " l1, L2 ,", "--study", "1", "--pdff-series", "7", "--deidentify"]
    )  # fmt: skip
    assert given.roi == "p.json" and given.anchor == ("L3", (1.0, 2.0, 3.0))
    assert given.index_levels == ("L1", "L2") and given.deidentify
    assert (given.study, given.pdff_series) == ("1", "7")


@pytest.mark.parametrize("point", ["nan,0,0", "0,inf,0"])
def test_non_finite_anchor_is_refused(point: str):
    with pytest.raises(InputError, match="--anchor"):
        _options(["analyze", "s", "--out", "o", "--anchor", f"L3:{point}"])
