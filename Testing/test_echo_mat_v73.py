"""MATLAB v7.3 (HDF5) ``imDataParams`` files, written here with h5py as MATLAB's ``save -v7.3``
lays them out, read as the same data saved as v5 (MAT-file 5.0, scipy) are read.

The layout (hdf5storage's "Storage Format" documentation page): a 512-byte user block
whose first 128 bytes are MATLAB's header, 116 bytes of text (``MATLAB 7.3 MAT-file, Platform:
..., Created on: ... HDF5 schema 1.00 .`` padded with spaces), 8 bytes of subsystem offset and
``00 02 'I' 'M'`` (version 0x0200, little-endian); a struct is a group with the attribute
``MATLAB_class = "struct"`` (and ``MATLAB_fields``: vlen arrays of ``S1``); each field a dataset
with ``MATLAB_class`` (``double``, ``single``, ``uint8``, ``logical``, ``char``, ...); MATLAB's
column-major ``[nx, ny, ...]`` array is the HDF5 dataset ``[..., ny, nx]``; complex arrays are a
compound of ``real`` and ``imag``; scalars are 1x1; text is uint16 with ``MATLAB_class = "char"``
and ``MATLAB_int_decode = 2``; logicals are uint8 with ``MATLAB_int_decode = 1``; an empty
array stores its dimensions (uint64) with ``MATLAB_empty = 1``; cells are object references
into ``#refs#``. MATLAB compresses v7.3 variables (deflate, chunked)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio

from RefractureRiskLib.cli import main
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.io.echo_mat import read_echo_mat
from RefractureRiskLib.io.images import read_image
from RefractureRiskLib.phantom.echoes import pattern_echoes

h5py = pytest.importorskip(
    "h5py", reason="h5py (the 'mat73' extra, installed by the test extras) is not installed"
)

_CLASSES = {
    "f8": "double",
    "f4": "single",
    "c16": "double",
    "c8": "single",
    "u1": "uint8",
    "i2": "int16",
    "b1": "logical",
}


class Char(str):
    """A MATLAB char row vector (written as uint16 with ``MATLAB_class = "char"``)."""


class Cell(list):
    """A MATLAB 1xN cell of numeric arrays (object references into ``#refs#``)."""


def _header() -> bytes:
    created = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(0))
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {created} HDF5 schema 1.00 ."
    head = text.encode("ascii").ljust(116, b" ") + bytes(8) + b"\x00\x02IM"
    return head.ljust(512, b"\0")


def _class_attrs(node, cls: str) -> None:
    node.attrs["MATLAB_class"] = np.bytes_(cls)


def _dataset(parent, name: str, value, compress: bool) -> None:
    """One MATLAB variable or field ``value`` (numpy array, :class:`Char`, :class:`Cell`, dict)."""
    if isinstance(value, dict):
        _struct(parent, name, value, compress)
        return
    if isinstance(value, Cell):
        refs = parent.file.require_group("#refs#")
        ds = parent.create_dataset(name, shape=(len(value), 1), dtype=h5py.ref_dtype)
        for n, item in enumerate(value):
            _dataset(refs, f"{name}{n}", item, compress)
            ds[n, 0] = refs[f"{name}{n}"].ref
        _class_attrs(ds, "cell")
        return
    if isinstance(value, Char):
        codes = np.array([[ord(c) for c in value]], np.uint16)  # MATLAB 1xN -> HDF5 N x 1
        ds = parent.create_dataset(name, data=codes.T)
        _class_attrs(ds, "char")
        ds.attrs["MATLAB_int_decode"] = np.int32(2)
        return
    arr = np.asarray(value)
    arr = arr.reshape((1, 1) if arr.ndim == 0 else (1, -1) if arr.ndim == 1 else arr.shape)
    cls = _CLASSES[arr.dtype.str[1:]]
    if arr.size == 0:
        ds = parent.create_dataset(name, data=np.array(arr.shape, np.uint64))
        _class_attrs(ds, cls)
        ds.attrs["MATLAB_empty"] = np.uint8(1)
        return
    data = arr.T  # the HDF5 dims are MATLAB's reversed: the same bytes, column-major
    if np.iscomplexobj(arr):
        part = arr.real.dtype
        data = np.empty(data.shape, [("real", part), ("imag", part)])
        data["real"], data["imag"] = arr.T.real, arr.T.imag
    elif cls == "logical":
        data = data.astype(np.uint8)
    kw = {"compression": "gzip", "compression_opts": 3} if compress and arr.size > 64 else {}
    ds = parent.create_dataset(name, data=np.ascontiguousarray(data), **kw)
    _class_attrs(ds, cls)
    if cls == "logical":
        ds.attrs["MATLAB_int_decode"] = np.int32(1)


def _struct(parent, name: str, fields: dict, compress: bool) -> None:
    grp = parent.create_group(name)
    _class_attrs(grp, "struct")
    names = np.empty(len(fields), h5py.vlen_dtype(np.dtype("S1")))
    for n, field in enumerate(fields):
        names[n] = np.array([c.encode("ascii") for c in field], "S1")
    grp.attrs["MATLAB_fields"] = names
    for field, value in fields.items():
        _dataset(grp, field, value, compress)


def write_v73(path: Path, variables: dict, compress: bool = True) -> Path:
    """``variables`` saved as MATLAB's ``save(path, ..., '-v7.3')`` lays them out."""
    with h5py.File(path, "w", userblock_size=512, libver="earliest") as fh:
        for name, value in variables.items():
            _dataset(fh, name, value, compress)
    with path.open("r+b") as fh:
        fh.write(_header())
    return path


def write_v5(path: Path, variables: dict) -> Path:
    """The same variables as a v5 MAT-file (scipy), chars as strings, cells as object arrays."""

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, Cell):
            cell = np.empty((1, len(value)), object)
            cell[0, :] = [np.asarray(v) for v in value]
            return cell
        return str(value) if isinstance(value, Char) else value

    sio.savemat(path, {k: plain(v) for k, v in variables.items()}, do_compression=True)
    return path


@pytest.fixture(scope="module")
def phantom():
    return pattern_echoes((0, 40, 100), (50.0,), snr=200.0, max_field_hz=80.0, patch_px=8, seed=5)


def _params(ph, clockwise: int = 1, dtype=np.complex64, coils: int = 1) -> dict:
    """imDataParams of the phantom: images ``[x, y, slice, coil, echo]`` (MATLAB's axes)."""
    images = ph.echoes.signal.transpose(2, 1, 0, 3)[:, :, :, None, :].astype(dtype)
    if coils > 1:  # coil sensitivities with their own magnitude and phase
        gains = np.array([1.0, 0.6 * np.exp(0.7j), 0.3 * np.exp(-2.0j)])[:coils]
        images = (images * gains[None, None, None, :, None]).astype(dtype)
    if clockwise != 1:
        images = np.conj(images)
    return {
        "images": images,
        "TE": np.asarray(ph.echoes.te_s)[None, :],
        "FieldStrength": np.float64(1.5),
        "PrecessionIsClockwise": np.float64(clockwise),
        "mask": np.ones(images.shape[:3], bool),
    }


def _pair(tmp_path: Path, params: dict, compress: bool = True) -> tuple[Path, Path]:
    v5 = write_v5(tmp_path / "five.mat", {"imDataParams": params})
    v73 = write_v73(tmp_path / "seven.mat", {"imDataParams": params}, compress)
    return v5, v73


def test_written_files_have_matlab_v73_layout(tmp_path, phantom) -> None:
    path = write_v73(tmp_path / "p.mat", {"imDataParams": _params(phantom)})
    raw = path.read_bytes()
    assert raw.startswith(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: ")
    assert raw[:116].rstrip(b" ").endswith(b"HDF5 schema 1.00 .")
    assert raw[116:128] == bytes(8) + b"\x00\x02IM"
    assert raw[512:520] == b"\x89HDF\r\n\x1a\n"
    with h5py.File(path, "r") as fh:
        assert fh.userblock_size == 512
        grp = fh["imDataParams"]
        assert grp.attrs["MATLAB_class"] == b"struct"
        fields = [bytes(f).decode() for f in grp.attrs["MATLAB_fields"]]
        assert fields == list(_params(phantom)) and set(fields) == set(grp)
        images = grp["images"]
        nk, nj, ni, ne = phantom.echoes.signal.shape
        assert images.shape == (ne, 1, nk, nj, ni)  # MATLAB [x, y, z, coil, echo] reversed
        assert images.dtype.names == ("real", "imag") and images.compression == "gzip"
        assert images.attrs["MATLAB_class"] == b"single"
        assert grp["FieldStrength"].shape == (1, 1)
        assert grp["TE"].shape == (ne, 1) and grp["TE"].attrs["MATLAB_class"] == b"double"
        assert grp["mask"].attrs["MATLAB_class"] == b"logical"


def _assert_same_echoes(a, b) -> None:
    assert a.signal.dtype == b.signal.dtype == np.complex64
    np.testing.assert_array_equal(a.signal, b.signal)
    assert a.te_s == b.te_s and a.field_strength_t == b.field_strength_t
    np.testing.assert_array_equal(a.ijk_to_ras, b.ijk_to_ras)  # no voxel size in the files
    assert (a.mask is None) == (b.mask is None)
    if a.mask is not None:
        np.testing.assert_array_equal(a.mask, b.mask)
    assert {k: v for k, v in a.provenance.items() if k != "file"} == {
        k: v for k, v in b.provenance.items() if k != "file"
    }


@pytest.mark.parametrize(
    ("clockwise", "dtype", "coils", "compress"),
    [
        (1, np.complex64, 1, True),
        (0, np.complex64, 1, True),
        (-1, np.complex128, 1, False),
        (1, np.complex128, 3, True),
    ],
)
def test_v73_reads_as_the_same_data_in_v5(tmp_path, phantom, clockwise, dtype, coils, compress):
    v5, v73 = _pair(tmp_path, _params(phantom, clockwise, dtype, coils), compress)
    a, b = read_echo_mat(v5), read_echo_mat(v73)
    _assert_same_echoes(a, b)
    assert b.provenance["conjugated"] is (clockwise != 1)
    assert b.provenance["coils"] == coils
    if coils == 1:  # back to the phantom's echoes (conjugated again when not clockwise)
        np.testing.assert_allclose(b.signal, phantom.echoes.signal, rtol=1e-6, atol=1e-7)
    assert b.te_s == pytest.approx(phantom.echoes.te_s) and b.field_strength_t == 1.5
    assert b.mask is not None and b.mask.shape == phantom.echoes.shape and b.mask.all()


def test_v73_odd_but_valid_fields(tmp_path, phantom) -> None:
    """4D images (no coil axis), integer scalars, an empty mask, a char note, a cell and a nested
    struct the reader does not need: read as v5 reads them."""
    params = _params(phantom)
    params["images"] = params["images"][:, :, :, 0, :]
    params |= {
        "FieldStrength": np.uint8(3),
        "PrecessionIsClockwise": np.int16(1),
        "mask": np.zeros((0, 0)),
        "note": Char("scanner export"),
        "coilNames": Cell([np.ones(2), np.zeros(3)]),
        "extra": {"voxelSize": np.array([1.5, 1.5, 4.0])},
    }
    v5, v73 = _pair(tmp_path, params)
    a, b = read_echo_mat(v5), read_echo_mat(v73)
    _assert_same_echoes(a, b)
    assert (
        b.field_strength_t == 3.0 and b.mask is None and b.signal.shape[:3] == phantom.echoes.shape
    )


def test_hdf5_without_user_block_or_matlab_attributes(tmp_path, phantom) -> None:
    """A plain HDF5 file (h5py, no MATLAB header, no MATLAB_class) in MATLAB's axis order."""
    params = _params(phantom, clockwise=0)
    path = write_v73(tmp_path / "seven.mat", {"imDataParams": params}, compress=False)
    plain = tmp_path / "plain.mat"
    with h5py.File(path, "r") as src, h5py.File(plain, "w") as dst:
        grp = dst.create_group("imDataParams")
        for name, ds in src["imDataParams"].items():
            grp.create_dataset(name, data=ds[()])
    assert plain.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    _assert_same_echoes(
        read_echo_mat(write_v5(tmp_path / "five.mat", {"imDataParams": params})),
        read_echo_mat(plain),
    )


def _maps(folder: Path) -> dict[str, np.ndarray]:
    return {p.stem: read_image(p).array for p in sorted(folder.glob("*.nrrd"))}


def test_fatwater_command_gives_the_same_maps(tmp_path, phantom) -> None:
    v5, v73 = _pair(tmp_path, _params(phantom, clockwise=0))
    for src, out in ((v5, "out5"), (v73, "out73")):
        assert main(["fatwater", str(src), "--out", str(tmp_path / out)]) == 0
    five, seven = _maps(tmp_path / "out5"), _maps(tmp_path / "out73")
    assert {"pdff", "r2s", "water", "fat", "fieldmap"} <= set(five) and set(five) == set(seven)
    for name, arr in five.items():
        np.testing.assert_array_equal(arr, seven[name], err_msg=name)
    assert np.abs(five["pdff"] - phantom.pdff_pct)[phantom.tissue].mean() < 2.0
    prov = json.loads((tmp_path / "out73" / "provenance.json").read_text())
    assert "seven.mat" in json.dumps(prov) and "conjugated" in json.dumps(prov)


def _bad_params(ph, change: str) -> dict:
    params = _params(ph)
    if change.startswith("no "):
        del params[change[3:]]
    elif change == "real images":
        params["images"] = np.abs(params["images"])
    elif change == "3D images":
        params["images"] = params["images"][:, :, 0, 0, :]
    elif change == "char field strength":
        params["FieldStrength"] = Char("1.5")
    elif change == "empty TE":
        params["TE"] = np.zeros((1, 0))
    elif change == "char TE":
        params["TE"] = Char("1.2e-3 2.4e-3")
    elif change == "cell images":
        params["images"] = Cell([params["images"]])
    elif change == "struct TE":
        params["TE"] = {"values": params["TE"]}
    return params


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("no images", "no field 'images'"),
        ("no TE", "no field 'TE'"),
        ("no FieldStrength", "no field 'FieldStrength'"),
        ("real images", "not complex"),
        ("3D images", "expected 5D"),
        ("char field strength", r"FieldStrength is text .*1\.5.*expected numbers"),
        ("char TE", "TE is text"),
        ("empty TE", "TE is empty"),
        ("cell images", r"images is a cell or struct array \(object references\)"),
        ("struct TE", "TE is a struct"),
    ],
)
def test_bad_v73_struct_is_refused_in_one_line(tmp_path, phantom, change, reason) -> None:
    params = _bad_params(phantom, change)
    path = write_v73(tmp_path / "bad.mat", {"imDataParams": params})
    with pytest.raises(InputError, match=reason) as info:
        read_echo_mat(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)
    if change.startswith(("no ", "real", "3D", "char", "empty")):  # the v5 file is refused alike
        with pytest.raises(InputError, match=reason):
            read_echo_mat(write_v5(tmp_path / "bad5.mat", {"imDataParams": params}))


@pytest.mark.parametrize("layout", ["other variable", "not a struct"])
def test_v73_without_the_struct_is_refused(tmp_path, phantom, layout) -> None:
    params = _params(phantom)
    variables = (
        {"data": params} if layout == "other variable" else {"imDataParams": params["images"]}
    )
    path = write_v73(tmp_path / "x.mat", variables)
    reason = "no imDataParams struct" if layout == "other variable" else "not a struct"
    with pytest.raises(InputError, match=reason) as info:
        read_echo_mat(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def _damaged(tmp_path: Path, phantom, how: str) -> Path:
    whole = write_v73(tmp_path / "whole.mat", {"imDataParams": _params(phantom)})
    data = bytearray(whole.read_bytes())
    if how == "header only":
        data = data[:520]
    elif how == "half":
        data = data[: len(data) // 2]
    elif how == "last bytes cut":
        data = data[:-40]
    else:  # the images' first compressed chunk overwritten
        with h5py.File(whole, "r") as fh:
            chunk = fh["imDataParams/images"].id.get_chunk_info(0)
        start = chunk.byte_offset + 16
        data[start : start + 64] = bytes(range(64))
    bad = tmp_path / "bad.mat"
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("how", ["header only", "half", "last bytes cut", "corrupt chunk"])
def test_damaged_v73_is_refused_in_one_line(tmp_path, phantom, how, capsys) -> None:
    bad = _damaged(tmp_path, phantom, how)
    with pytest.raises(InputError, match=r"v7\.3 \(HDF5\)") as info:
        read_echo_mat(bad)
    assert str(info.value).startswith(str(bad)) and "\n" not in str(info.value)
    assert main(["fatwater", str(bad), "--out", str(tmp_path / "o")]) == 2
    errors = [ln for ln in capsys.readouterr().err.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and "bad.mat" in errors[0], errors
    assert not (tmp_path / "o").exists()
