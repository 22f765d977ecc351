"""The fatwater command starts reading a .mat input on a thread before its imports; a command
that fails before it reads the file (here: --dicom on a .mat file) keeps nothing of that read,
and neither does one that succeeds (the read is used once)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from RefractureRiskLib import cli
from RefractureRiskLib.io import mat_inflate


def _mat(path: Path) -> Path:
    import scipy.io as sio

    rng = np.random.default_rng(0)
    images = (rng.normal(size=(6, 5, 2, 1, 4)) + 1j * rng.normal(size=(6, 5, 2, 1, 4))) * 100
    params = {
        "images": images.astype(np.complex64),
        "TE": np.array([[1.2e-3, 2.0e-3, 2.8e-3, 3.6e-3]]),
        "FieldStrength": 1.5,
        "PrecessionIsClockwise": 1,
    }
    sio.savemat(path, {"imDataParams": params}, do_compression=True)
    return path


def test_a_command_failing_before_reading_keeps_no_started_read(tmp_path) -> None:
    mat = _mat(tmp_path / "x.mat")
    argv = ["fatwater", str(mat), "--out", str(tmp_path / "out"), "--dicom"]
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    assert str(mat.resolve()) not in {str(Path(p).resolve()) for p in mat_inflate._started}
    assert not (tmp_path / "out").exists()


def test_a_successful_command_uses_its_read_once(tmp_path) -> None:
    mat = _mat(tmp_path / "y.mat")
    assert cli.main(["fatwater", str(mat), "--out", str(tmp_path / "out")]) == 0
    assert str(mat.resolve()) not in {str(Path(p).resolve()) for p in mat_inflate._started}
    assert (tmp_path / "out" / "pdff.nrrd").is_file()
