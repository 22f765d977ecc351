"""The one-study analysis without pandas: its statistics as records (stats/records.py) give the
same table, CSV bytes, summaries, report and terminal table as the DataFrame they replace, and a
cold ``refracture-risk analyze`` does not import pandas (issue 13: ~0.4 s of a cold run)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from RefractureRiskLib.commands.analyze import level_lines
from RefractureRiskLib.commands.demo import DEMO_CLINICAL
from RefractureRiskLib.core.roiset import LevelRoi, RoiFlag, RoiMethod, RoiSet
from RefractureRiskLib.core.study import Study
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.model.modelfile import bundled_model_path, load_model
from RefractureRiskLib.model.scoring import score
from RefractureRiskLib.report import onepage
from RefractureRiskLib.report.html_page import _html_table
from RefractureRiskLib.report.text import LevelTable
from RefractureRiskLib.stats import read_statistics, summarize_statistics, write_statistics
from RefractureRiskLib.stats.records import records_frame
from RefractureRiskLib.stats.roi_statistics import (
    roi_statistics,
    roi_statistics_records,
    statistics_columns,
)


def _study_and_rois() -> tuple[Study, RoiSet]:
    """Four levels: one ordinary, one fractured and treated (excluded), one whose R2* is NaN
    on part of its ROI, one whose maps are NaN on its whole ROI."""
    rng = np.random.default_rng(3)
    shape = (6, 24, 24)
    labels = np.zeros(shape, dtype=np.int16)
    for n, label in enumerate((3, 4, 5, 6)):
        labels[1:5, 2 + 5 * n : 6 + 5 * n, 4:12] = label
    pdff = rng.normal(45.0, 3.0, shape)
    r2s = rng.normal(60.0, 5.0, shape)
    r2s[1:3, 12:16, 4:12] = np.nan  # part of label 5
    pdff[labels == 6] = np.nan
    r2s[labels == 6] = np.inf
    study = Study({"pdff": Volume(pdff), "r2s": Volume(r2s)})
    levels = (
        LevelRoi("T12", 3),
        LevelRoi("L1", 4, flags=frozenset({RoiFlag.FRACTURED, RoiFlag.INDEX})),
        LevelRoi("L2", 5),
        LevelRoi("L3", 6),
    )
    return study, RoiSet(Volume(labels), levels, RoiMethod("automatic"))


def test_records_are_the_table_and_write_the_same_csv(tmp_path) -> None:
    study, rois = _study_and_rois()
    frame = roi_statistics(rois, study)
    records = roi_statistics_records(rois, study)
    assert list(frame.columns) == statistics_columns() == list(records[0])
    assert frame["label"].dtype == np.int64 and frame["n_voxels"].dtype == np.int64
    assert frame["included"].dtype == bool
    assert frame["level"].dtype == pd.DataFrame({"text": ["L1"]})["text"].dtype  # as inferred
    assert frame["mean"].dtype == np.float64
    pd.testing.assert_frame_equal(records_frame(records, statistics_columns()), frame)
    # the same bytes as pandas' CSV, NaN cells and the joined flags included
    write_statistics(records, tmp_path / "records.csv")
    frame.to_csv(tmp_path / "pandas.csv", index=False)
    written = (tmp_path / "records.csv").read_bytes()
    assert written == (tmp_path / "pandas.csv").read_bytes()
    assert b"fractured;index" in written and b",," in written  # flags and a NaN cell
    # the summaries from records, the DataFrame and the CSV read back agree
    summaries = [
        summarize_statistics(table, ("L1",))
        for table in (records, frame, read_statistics(tmp_path / "records.csv"))
    ]
    assert repr(summaries[0]) == repr(summaries[1]) == repr(summaries[2])  # NaN != NaN
    assert summaries[0].levels_used["pdff_adjacent_pct"] == ("T12", "L2")
    assert math.isnan(summaries[0].pdff_global_L1L4_pct)  # L2 only: too few levels


def test_a_table_without_rows_keeps_its_header(tmp_path) -> None:
    from RefractureRiskLib.pipeline_files import MEASURED_COLUMNS, _columns

    write_statistics([], tmp_path / "empty.csv", _columns([]))  # as write_outputs calls it
    header = (tmp_path / "empty.csv").read_text().splitlines()
    assert header == [",".join(MEASURED_COLUMNS)]
    assert MEASURED_COLUMNS[:2] == ("level", "label") and MEASURED_COLUMNS[-1] == "body_volume_ml"


def test_summary_from_records_refuses_what_the_dataframe_refuses() -> None:
    study, rois = _study_and_rois()
    records = roi_statistics_records(rois, study)
    with pytest.raises(Exception, match="several rows for level T12, map pdff"):
        summarize_statistics(records + records[:1])
    with pytest.raises(Exception, match="missing column"):
        summarize_statistics([{k: v for k, v in r.items() if k != "flags"} for r in records])


def test_level_table_html_as_pandas_wrote_it() -> None:
    study, rois = _study_and_rois()
    table = onepage.level_table(roi_statistics_records(rois, study))
    assert len(table) == 4 and table.column("In\nsummaries") == ["yes", "no", "yes", "yes"]
    odd = LevelTable(("Level", "Flags <&>"), (("L1", 'a & b <c> "d"'), ("L2", "")))
    for t in (table, odd):
        expected = pd.DataFrame(list(t.rows), columns=list(t.columns)).to_html(
            index=False, escape=True, border=0, classes="levels"
        )
        assert _html_table(t) == expected


def test_report_is_the_same_from_records_and_from_the_dataframe(tmp_path) -> None:
    study, rois = _study_and_rois()
    records = roi_statistics_records(rois, study)
    summary = summarize_statistics(records, ("L1",))
    model = load_model(bundled_model_path())
    risk = score(model, {**DEMO_CLINICAL, "pdff_global_L1L4": 45.0, "r2s_global_L1L4": 60.0})
    provenance = {"software": "x", "created_utc": "fixed"}
    for name, stats in (("records", records), ("frame", roi_statistics(rois, study))):
        onepage.render_report(tmp_path / name, study, rois, stats, summary, risk, provenance)
    for suffix in ("png", "pdf", "html"):
        a = (tmp_path / "records" / f"report.{suffix}").read_bytes()
        assert a == (tmp_path / "frame" / f"report.{suffix}").read_bytes(), suffix


def test_terminal_levels_as_pandas_printed_them() -> None:
    study, rois = _study_and_rois()
    records = roi_statistics_records(rois, study)
    shown = [r for r in records if r["level"] != "L3"]  # pandas drops L3 (no mean): see below
    frame = records_frame(shown, statistics_columns())
    table = frame.pivot_table(index="level", columns="map", values="mean", sort=False).rename(
        columns={"pdff": "pdff_mean_pct", "r2s": "r2s_mean_per_s"}
    )
    flags = frame.drop_duplicates("level").set_index("level")[["flags", "included"]]
    expected = table.join(flags).to_string(float_format=lambda x: f"{x:.1f}")
    assert "\n".join(level_lines(shown)) == expected
    # a level without any mean is listed, its means as NaN (pandas' pivot left it out)
    last = level_lines(records)[-1].split()
    assert last == ["L3", "NaN", "NaN", "True"]


def test_cold_analyze_does_not_import_pandas(tmp_path) -> None:
    """``refracture-risk analyze`` with a JSON clinical file and the report, in a new process:
    pandas is not imported, and the outputs are there."""
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

    phantom = generate_phantom(PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0))
    write_dicom_study(phantom.study, tmp_path / "dicom", vendor="GE", seed=1)
    (tmp_path / "patient.json").write_text(json.dumps(DEMO_CLINICAL))
    args = [str(tmp_path / "dicom"), "--clinical", str(tmp_path / "patient.json")]
    args += ["--index-levels", "L1", "--out", str(tmp_path / "out")]
    code = (
        "import sys\n"
        "from RefractureRiskLib.cli import main\n"
        f"rc = main(['analyze', *{args!r}])\n"
        "assert rc == 0, rc\n"
        "print('pandas' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"
    assert "level" in proc.stdout and "Probability" in proc.stdout
    for name in ("statistics.csv", "results.json", "report.png", "report.pdf", "report.html"):
        assert (tmp_path / "out" / name).is_file(), name
