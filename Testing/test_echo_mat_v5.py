"""The lean MATLAB v5 reader (:mod:`RefractureRiskLib.io.mat_v5`) that keeps scipy out of a cold
``fatwater`` command: the same arrays as ``scipy.io.loadmat`` on the ISMRM cases and on files
scipy writes (compressed or not, every field type the toolbox uses), big-endian files written
here byte by byte, and the fall-back to scipy for layouts it does not read (then still read, or
refused with the file and the reason)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.io.echo_mat import read_echo_mat
from RefractureRiskLib.io.mat_v5 import UnsupportedMatError, read_struct

ISMRM = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ismrm2012"


def _scipy_fields(path: Path) -> dict[str, np.ndarray]:
    st = sio.loadmat(str(path), squeeze_me=False, struct_as_record=True)["imDataParams"]
    rec = st.reshape(-1)[0]
    return {name: rec[name] for name in st.dtype.names}


def _assert_same(ours: dict | None, ref: dict) -> None:
    assert ours is not None and list(ours) == list(ref)
    for name, value in ref.items():
        got = ours[name]
        assert got.dtype == value.dtype and got.shape == value.shape, name
        assert np.array_equal(got, value), name


@pytest.mark.parametrize("case", [13, 15, 16])
def test_ismrm_cases_equal_scipy(case: int) -> None:
    path = ISMRM / f"{case}.mat"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    fields = read_struct(path, "imDataParams")
    _assert_same(fields, _scipy_fields(path))
    assert fields is not None and np.iscomplexobj(fields["images"])
    assert fields["images"].ndim == 5 and np.abs(fields["images"]).max() > 0


@pytest.mark.parametrize("compress", [False, True])
def test_scipy_written_files_equal_scipy(tmp_path, compress: bool) -> None:
    rng = np.random.default_rng(3)
    images = (rng.normal(size=(7, 5, 3, 1, 4)) + 1j * rng.normal(size=(7, 5, 3, 1, 4))).astype(
        np.complex64
    )
    params = {
        "images": images,
        "TE": np.array([[1.2e-3, 2.2e-3, 3.2e-3, 4.2e-3]]),
        "FieldStrength": np.uint8(3),
        "PrecessionIsClockwise": np.uint8(1),
        "mask": rng.random((7, 5, 3)) > 0.5,  # logical
        "wide": (rng.normal(size=(2, 3)) + 1j).astype(np.complex128),
        "counts": np.arange(-3, 3, dtype=np.int16).reshape(2, 3),
        "empty": np.zeros((0, 0)),
    }
    path = tmp_path / "p.mat"
    sio.savemat(path, {"before": np.ones(4), "imDataParams": params}, do_compression=compress)
    fields = read_struct(path, "imDataParams")
    _assert_same(fields, _scipy_fields(path))
    assert read_struct(path, "absent") is None
    echoes = read_echo_mat(path)
    np.testing.assert_array_equal(echoes.signal, images[:, :, :, 0].transpose(2, 1, 0, 3))


def _element(order: str, kind: int, payload: bytes) -> bytes:
    if len(payload) <= 4:  # small data element: size and type in one 4-byte word
        return struct.pack(order + "I", (len(payload) << 16) | kind) + payload.ljust(4, b"\0")
    pad = b"\0" * (-len(payload) % 8)
    return struct.pack(order + "II", kind, len(payload)) + payload + pad


def _matrix(order: str, name: bytes, values: np.ndarray, cls: int, stored: str) -> bytes:
    """A numeric miMATRIX: class ``cls``, values stored as numpy type ``stored``."""
    mi = {"f8": 9, "u1": 2, "i2": 3, "f4": 7}[stored]
    flags = cls | (0x800 if np.iscomplexobj(values) else 0)
    dt = np.dtype(stored).newbyteorder(order)
    body = _element(order, 6, struct.pack(order + "II", flags, 0))
    body += _element(order, 5, struct.pack(order + f"{values.ndim}i", *values.shape))
    body += _element(order, 1, name)
    flat = values.reshape(-1, order="F")
    body += _element(order, mi, flat.real.astype(dt).tobytes())
    if np.iscomplexobj(values):
        body += _element(order, mi, flat.imag.astype(dt).tobytes())
    return _element(order, 14, body)


def _hand_written(order: str, compress: bool, fields: dict) -> bytes:
    """A v5 file with the struct ``imDataParams`` of ``fields`` (name -> (values, cls, stored))."""
    width = 32
    names = b"".join(n.encode().ljust(width, b"\0") for n in fields)
    body = _element(order, 6, struct.pack(order + "II", 2, 0))
    body += _element(order, 5, struct.pack(order + "2i", 1, 1))
    body += _element(order, 1, b"imDataParams")
    body += _element(order, 5, struct.pack(order + "i", width))
    body += _element(order, 1, names)
    for values, cls, stored in fields.values():
        body += _matrix(order, b"", values, cls, stored)
    var = _element(order, 14, body)
    if compress:
        packed = zlib.compress(var)
        var = struct.pack(order + "II", 15, len(packed)) + packed
    head = b"MATLAB 5.0 MAT-file, written by the test".ljust(116) + bytes(8)
    head += struct.pack(order + "H", 0x0100) + (b"IM" if order == "<" else b"MI")
    return head + var


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("compress", [False, True])
def test_hand_written_files_both_byte_orders(tmp_path, order: str, compress: bool) -> None:
    images = np.arange(2 * 3 * 2 * 1 * 3, dtype=np.float32).reshape(2, 3, 2, 1, 3, order="F")
    images = images + 1j * (images + 0.5)
    fields = {
        "TE": (np.array([[1e-3, 2e-3, 3e-3]]), 6, "f8"),
        "images": (images, 7, "f4"),
        "FieldStrength": (np.array([[3.0]]), 6, "u1"),  # a double stored as uint8 (small)
        "PrecessionIsClockwise": (np.array([[1.0]]), 6, "u1"),
        "mask": (np.ones((2, 3, 2)), 6, "i2"),
    }
    path = tmp_path / "h.mat"
    path.write_bytes(_hand_written(order, compress, fields))
    got = read_struct(path, "imDataParams")
    assert got is not None and list(got) == list(fields)
    assert got["images"].dtype == np.complex64 and got["images"].shape == images.shape
    np.testing.assert_array_equal(got["images"], images)
    assert got["FieldStrength"].dtype == np.uint8 and got["FieldStrength"][0, 0] == 3
    assert got["mask"].dtype == np.int16 and got["mask"].shape == (2, 3, 2)
    if order == "<":  # scipy reads these too (both byte orders: scipy only when native here)
        _assert_same(got, _scipy_fields(path))
    echoes = read_echo_mat(path)
    assert echoes.field_strength_t == 3.0 and echoes.signal.shape == (2, 3, 2, 3)


def test_unusual_layout_falls_back_to_scipy(tmp_path) -> None:
    """A char field: the lean reader declines, scipy reads the file, the echoes come out."""
    params = {
        "images": np.ones((4, 3, 2, 1, 3), np.complex64) * (1 + 2j),
        "TE": np.array([[1e-3, 2e-3, 3e-3]]),
        "FieldStrength": 1.5,
        "note": "scanner export",
    }
    path = tmp_path / "c.mat"
    sio.savemat(path, {"imDataParams": params})
    with pytest.raises(UnsupportedMatError, match="note"):
        read_struct(path, "imDataParams")
    echoes = read_echo_mat(path)
    assert echoes.signal.shape == (2, 3, 4, 3) and echoes.field_strength_t == 1.5


@pytest.mark.parametrize("cut", [140, 200, -9])
def test_damaged_files_are_refused_with_the_file_named(tmp_path, cut: int) -> None:
    params = {
        "images": np.ones((4, 3, 2, 1, 3), np.complex64),
        "TE": np.array([[1e-3, 2e-3, 3e-3]]),
        "FieldStrength": 1.5,
    }
    whole = tmp_path / "whole.mat"
    sio.savemat(whole, {"imDataParams": params}, do_compression=True)
    bad = tmp_path / "bad.mat"
    bad.write_bytes(whole.read_bytes()[:cut])
    with pytest.raises(UnsupportedMatError):
        read_struct(bad, "imDataParams")
    with pytest.raises(InputError, match=r"bad\.mat") as info:
        read_echo_mat(bad)
    assert "\n" not in str(info.value)


def _small_mat(path: Path, scale: float = 1.0) -> Path:
    params = {
        "images": np.ones((4, 3, 2, 1, 3), np.complex64) * (1 + 2j) * scale,
        "TE": np.array([[1e-3, 2e-3, 3e-3]]),
        "FieldStrength": 1.5,
    }
    sio.savemat(path, {"imDataParams": params}, do_compression=True)
    return path


def test_started_reading_gives_the_same_fields_once(tmp_path) -> None:
    """:func:`start_reading` (the command's thread while numpy loads) hands the next read of the
    file what a read from disk gives; it is used once, then the file is read again."""
    from RefractureRiskLib.io import mat_inflate

    path = _small_mat(tmp_path / "s.mat")
    mat_inflate.start_reading(path)
    assert str(path.resolve()) in {str(Path(p).resolve()) for p in mat_inflate._started}
    _assert_same(read_struct(path, "imDataParams"), _scipy_fields(path))
    assert not mat_inflate._started
    _assert_same(read_struct(path, "imDataParams"), _scipy_fields(path))


def test_started_reading_of_a_changed_file_is_not_used(tmp_path) -> None:
    from RefractureRiskLib.io import mat_inflate

    path = _small_mat(tmp_path / "s.mat")
    mat_inflate.start_reading(path)
    _small_mat(tmp_path / "s.mat", scale=3.0)  # replaced before it is read
    got = read_struct(path, "imDataParams")
    assert got is not None and got["images"].ravel()[0] == 3 + 6j


def test_started_reading_of_a_damaged_file_raises_when_read(tmp_path) -> None:
    from RefractureRiskLib.io import mat_inflate

    whole = _small_mat(tmp_path / "whole.mat")
    bad = tmp_path / "bad.mat"
    data = bytearray(whole.read_bytes())
    data[150:170] = b"\xff" * 20  # inside the zlib stream
    bad.write_bytes(bytes(data))
    mat_inflate.start_reading(bad)  # no error here: it is the reader's to raise
    with pytest.raises(UnsupportedMatError, match="compressed element"):
        read_struct(bad, "imDataParams")
    with pytest.raises(InputError, match=r"bad\.mat"):
        read_echo_mat(bad)


def test_start_reading_ignores_what_is_not_a_mat_file(tmp_path) -> None:
    from RefractureRiskLib.io import mat_inflate

    (tmp_path / "x.txt").write_text("not a mat file")
    for path in (tmp_path, tmp_path / "x.txt", tmp_path / "absent.mat"):
        mat_inflate.start_reading(path)
    assert not mat_inflate._started


def test_mat_inflate_loads_no_numpy() -> None:
    """It runs before numpy is imported, in parallel with that import."""
    import subprocess
    import sys

    code = (
        "import sys; import RefractureRiskLib.io.mat_inflate; "
        "assert 'numpy' not in sys.modules, sorted(m for m in sys.modules if 'numpy' in m)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_echoes_are_contiguous_complex64_in_slice_order(tmp_path, dtype) -> None:
    """``[x, y, z, coil, echo]`` single or double in the file -> ``[k, j, i, echo]`` complex64,
    C-contiguous and writable (one copy when the file holds singles)."""
    rng = np.random.default_rng(8)
    images = (rng.normal(size=(5, 4, 3, 1, 3)) + 1j * rng.normal(size=(5, 4, 3, 1, 3))).astype(
        dtype
    )
    params = {"images": images, "TE": np.array([[1e-3, 2e-3, 3e-3]]), "FieldStrength": 3.0}
    path = tmp_path / "e.mat"
    sio.savemat(path, {"imDataParams": params})
    signal = read_echo_mat(path).signal
    assert signal.dtype == np.complex64 and signal.flags.c_contiguous and signal.flags.writeable
    np.testing.assert_array_equal(
        signal, images[:, :, :, 0, :].transpose(2, 1, 0, 3).astype(np.complex64)
    )
