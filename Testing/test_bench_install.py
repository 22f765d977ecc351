"""bench/bench_install.py reads licences from package metadata and flags GPL, not LGPL."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "bench_install", Path(__file__).resolve().parents[1] / "bench" / "bench_install.py"
)
bench_install = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_install)


@pytest.mark.parametrize(
    ("lic", "gpl"),
    [
        ("GPL-3.0-only", True),
        ("GNU General Public License v3 (GPLv3)", True),
        ("AGPL-3.0-or-later", True),
        ("LGPL-3.0-only", False),
        ("GNU Lesser General Public License v3 (LGPLv3)", False),
        ("MIT", False),
        ("BSD-3-Clause AND 0BSD AND MIT", False),
    ],
)
def test_gpl_is_told_from_lgpl_and_permissive(lic: str, gpl: bool) -> None:
    assert bench_install.is_gpl(lic) is gpl


def test_licence_prefers_the_expression_then_classifiers() -> None:
    meta = "Metadata-Version: 2.4\nName: x\nLicense-Expression: GPL-3.0-or-later\n\n"
    assert bench_install.licence(meta) == "GPL-3.0-or-later"
    meta = (
        "Metadata-Version: 2.1\nName: pylibjpeg-libjpeg\nLicense: see file\n"
        "Classifier: License :: OSI Approved :: GNU General Public License v3 (GPLv3)\n\n"
    )
    assert bench_install.is_gpl(bench_install.licence(meta))
    assert bench_install.licence("Metadata-Version: 2.1\nName: y\n\n") == "unknown"
