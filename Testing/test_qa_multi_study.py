"""QA regression: a folder of several studies none of which has PDFF says so, not "choose one"."""

from __future__ import annotations

import numpy as np
import pytest

from RefractureRiskLib.core import Study, Volume
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.io.dicom_load import load_study
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study


def _write(path, seed: int, kinds: tuple[str, ...]) -> None:
    shape = (3, 16, 16)
    grid = Volume.from_geometry(np.zeros(shape), [1.5, 1.5, 3.0], [0.0, 0.0, 0.0], np.eye(3))
    maps = {k: grid.with_array(np.full(shape, 50.0)) for k in ("pdff", "water", "fat")}
    write_dicom_study(Study(maps), path, kinds=kinds, seed=seed)


def test_no_pdff_in_any_study_is_said_at_once(tmp_path) -> None:
    _write(tmp_path / "a", 1, ("water", "fat"))
    _write(tmp_path / "b", 2, ("water",))
    with pytest.raises(InputError) as err:
        load_study(tmp_path)
    msg = str(err.value)
    assert "none of the 2 studies" in msg and "PDFF" in msg
    assert "choose one" not in msg


def test_several_studies_with_pdff_still_ask_which(tmp_path) -> None:
    _write(tmp_path / "a", 1, ("pdff", "water"))
    _write(tmp_path / "b", 2, ("water",))
    with pytest.raises(InputError, match="choose one"):
        load_study(tmp_path)
