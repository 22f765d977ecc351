"""Cold analysis of a plain DICOM study imports no pydicom (issue 13: about 0.5 s of a cold
``analyze``): headers of Explicit VR Little Endian files are read by the fast reader with its
own keyword table, native pixels straight from the file; pydicom is imported only for the files
that reader leaves to it (other transfer syntaxes, damaged headers, compressed pixels)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from RefractureRiskLib.io.dicom_fastheader import KNOWN_TAGS


def test_the_fast_readers_keyword_table_is_pydicoms_dictionary():
    from pydicom.datadict import tag_for_keyword

    assert KNOWN_TAGS  # a wrong entry would read the wrong element silently
    for keyword, tag in KNOWN_TAGS.items():
        assert tag_for_keyword(keyword) == tag, keyword


def test_a_keyword_outside_the_table_still_reads_through_pydicoms_dictionary(tmp_path):
    from RefractureRiskLib.io.dicom_fastheader import FastDataset

    assert "ProtocolName" not in KNOWN_TAGS
    ds = FastDataset({0x00181030: (b"LO", b"lumbar IDEAL ")})
    assert ds.get("ProtocolName") == "lumbar IDEAL"
    assert "ProtocolName" in ds and "NotAKeyword" not in ds


_PROBE = """
import json, sys
from RefractureRiskLib.io.dicom_load import load_study
study = load_study(sys.argv[1])
print(json.dumps({"modules": sorted(m for m in sys.modules if m.split(".")[0] == "pydicom"),
                  "kinds": sorted(study.maps), "shape": list(study.pdff.shape),
                  "sum": float(study.pdff.array.sum())}))
"""


@pytest.fixture(scope="module")
def plain_study(tmp_path_factory):
    from RefractureRiskLib.phantom import PhantomSpec, generate_phantom
    from RefractureRiskLib.phantom.dicom_writer import write_dicom_study

    folder = tmp_path_factory.mktemp("plain") / "dicom"
    phantom = generate_phantom(PhantomSpec(seed=1, fractured={"L1": 0.3}, snr=80.0))
    write_dicom_study(phantom.study, folder, vendor="GE", seed=1)
    return folder


def test_loading_a_plain_study_imports_no_pydicom_and_gives_the_same_maps(plain_study):
    from RefractureRiskLib.io.dicom_load import load_study

    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(plain_study)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = json.loads(proc.stdout.splitlines()[-1])
    assert fresh["modules"] == []
    here = load_study(plain_study)  # in this process, where pydicom is already loaded
    assert fresh["kinds"] == sorted(here.maps)
    assert fresh["shape"] == list(here.pdff.shape)
    assert fresh["sum"] == pytest.approx(float(here.pdff.array.sum()), rel=0, abs=0)
