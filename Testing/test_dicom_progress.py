"""Loading a DICOM study reports real progress through the library's callback (issue 16,
point 2): "scanned k of n files" while the headers are read, then "read k of n series" as each
map is read, in order and never going back; a raising callback stops the loading (the
library's cancel convention)."""

from __future__ import annotations

import re

import pytest

from RefractureRiskLib.io.dicom_load import load_study, load_study_with_report
from RefractureRiskLib.io.dicom_scan import scan_files
from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

KINDS = ("pdff", "r2s", "water", "fat")


@pytest.fixture(scope="module")
def study_folder(tmp_path_factory):
    """The phantom as an IDEAL-IQ-style study: four maps, one file per slice each."""
    folder = tmp_path_factory.mktemp("progress")
    spec = PhantomSpec(seed=3, in_plane_spacing_mm=3.0, slice_thickness_mm=4.0)
    write_dicom_study(generate_phantom(spec).study, folder, seed=3, kinds=KINDS)
    return folder


def _counts(messages, pattern):
    found = [re.fullmatch(pattern, m) for m in messages]
    return [(int(m.group(1)), int(m.group(2))) for m in found if m]


def test_loading_reports_files_scanned_then_series_read(study_folder):
    messages: list[str] = []
    loaded = load_study_with_report(study_folder, progress=messages.append)
    n_files = sum(1 for p in study_folder.rglob("*") if p.is_file())
    scanned = _counts(messages, r"scanned (\d+) of (\d+) files")
    read = _counts(messages, r"read (\d+) of (\d+) series \(.+: series .+\)")
    assert len(messages) == len(scanned) + len(read)  # nothing else, and in this order:
    assert messages[: len(scanned)] == [f"scanned {k} of {n} files" for k, n in scanned]
    assert len(scanned) > 2 and {n for _k, n in scanned} == {n_files}
    assert [k for k, _n in scanned] == sorted({k for k, _n in scanned})  # strictly rising
    assert scanned[-1] == (n_files, n_files)
    assert read == [(k, len(KINDS)) for k in range(1, len(KINDS) + 1)]
    assert set(loaded.study.maps) == set(KINDS)


def test_at_most_about_fifty_reports_however_many_files(study_folder):
    n_files = sum(1 for p in study_folder.rglob("*") if p.is_file())
    assert n_files > 51  # enough to be thinned
    messages: list[str] = []
    scan_files(study_folder, messages.append)
    assert 25 <= len(messages) <= 51, len(messages)
    assert messages[-1] == f"scanned {n_files} of {n_files} files"


def test_a_raising_callback_stops_the_loading(study_folder):
    class StopError(Exception):
        pass

    seen: list[str] = []

    def progress(message: str) -> None:
        seen.append(message)
        if message.startswith("scanned") and len(seen) == 3:
            raise StopError

    with pytest.raises(StopError):
        load_study(study_folder, progress=progress)
    assert len(seen) == 3


def test_without_a_callback_nothing_changes(study_folder):
    with_progress = load_study(study_folder, progress=lambda _m: None)
    without = load_study(study_folder)
    for kind in KINDS:
        assert (with_progress.maps[kind].array == without.maps[kind].array).all()
    assert with_progress.provenance == without.provenance
