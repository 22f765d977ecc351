"""ISMRM fat-water toolbox ``imDataParams`` .mat files -> :class:`EchoSet`.

The struct's fields are read by name (their order differs between files): ``images`` (complex,
``[nx, ny, nz, ncoils, nTE]``), ``TE`` (s), ``FieldStrength`` (T), ``PrecessionIsClockwise`` (1 =
clockwise; other values -> the data are conjugated) and the optional ``mask``. MATLAB v5 files are
read by :mod:`.mat_v5` (numpy + zlib), or with scipy when their layout is unusual; v7.3 files (HDF5,
MATLAB's layout: a struct is a group, each field a dataset with a ``MATLAB_class``, axes
reversed, complex as a ``real``/``imag`` compound) are read with h5py (the ``mat73`` extra) and
refused with that reason when it is missing. Both give the same arrays (MATLAB's shape), and
text where a number is expected is refused in both. Several coils are combined by the
root sum of squares weighting of the first echo's phase-aligned sum (the challenge files are already
combined).

The files carry no geometry: the grid keeps the file's axes, ``i`` = x (first array axis),
``j`` = y, ``k`` = slice, with 1 mm voxels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from RefractureRiskLib.core.echoes import EchoSet
from RefractureRiskLib.core.errors import InputError

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NO_STRUCT = "no imDataParams struct (not an ISMRM fat-water toolbox file)"


def _is_v73(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(140)
        fh.seek(512)
        tail = fh.read(8)
    return b"MATLAB 7.3" in head or _HDF5_MAGIC in (head[:8], tail)  # HDF5 at 0: no user block


def _load_v5(path: Path) -> dict[str, object]:
    """The struct's fields by the lean reader (:mod:`.mat_v5`, no scipy import: ~0.14 s of a
    cold command); files outside its layout are read by ``scipy.io``, which also names what is
    wrong with a damaged file."""
    from RefractureRiskLib.io.mat_v5 import UnsupportedMatError, read_struct

    try:
        fields = read_struct(path, "imDataParams")
    except UnsupportedMatError:
        return _load_v5_scipy(path)
    if fields is None:
        raise InputError(path, _NO_STRUCT)
    return dict(fields)


def _load_v5_scipy(path: Path) -> dict[str, object]:
    import scipy.io as sio

    try:
        doc = sio.loadmat(str(path), squeeze_me=False, struct_as_record=True)
    except Exception as err:  # scipy raises many types for a damaged file (MatReadError, ...)
        reason = f"not a readable MATLAB file ({type(err).__name__}: {err})"
        raise InputError(path, reason) from None
    if "imDataParams" not in doc:
        raise InputError(path, _NO_STRUCT)
    st = doc["imDataParams"]
    if st.dtype.names is None:
        raise InputError(path, "imDataParams is not a struct")
    rec = st.reshape(-1)[0]
    return {name: rec[name] for name in st.dtype.names}


# the fields the reader uses; a v7.3 file's other fields (text, cells, structs) are not read
_USED_FIELDS = ("images", "TE", "FieldStrength", "PrecessionIsClockwise", "mask")


def _load_v73(path: Path) -> dict[str, object]:
    """The used fields of a MATLAB v7.3 (HDF5) file's ``imDataParams`` struct, in MATLAB's shape
    and stored type, as the v5 readers return them (:func:`_v73_array`)."""
    try:
        import h5py
    except ModuleNotFoundError:
        raise InputError(
            path,
            "MATLAB v7.3 (HDF5) file; reading it needs h5py: pip install 'refracture-risk[mat73]'",
        ) from None
    try:
        with h5py.File(path, "r") as fh:
            grp = fh.get("imDataParams")
            if grp is None:
                raise InputError(path, _NO_STRUCT)
            if not isinstance(grp, h5py.Group) or _matlab_class(grp) not in ("struct", ""):
                kind = _matlab_class(grp) or "an HDF5 dataset"
                raise InputError(path, f"imDataParams is not a struct but {kind}")
            return {name: _v73_array(path, grp[name], name) for name in _USED_FIELDS if name in grp}
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as err:  # damaged HDF5
        reason = " ".join(str(err).split()) or type(err).__name__
        raise InputError(path, f"MATLAB v7.3 (HDF5) file that cannot be read ({reason})") from None


def _matlab_class(node: object) -> str:
    """A v7.3 object's ``MATLAB_class`` attribute (``double``, ``struct``, ``char``, ...), or ''."""
    value = node.attrs.get("MATLAB_class", b"")  # type: ignore[attr-defined]
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


def _v73_array(path: Path, node: object, name: str) -> np.ndarray:
    """One v7.3 struct field as the v5 readers give it: MATLAB's shape (the HDF5 dataset's axes
    reversed), complex from the ``real``/``imag`` compound (complex64 for singles), an empty
    array (``MATLAB_empty``: the dataset holds the dimensions) as 0x0, text (``char``, UTF-16
    codes) as a numpy string. Cells, structs and other objects: :class:`InputError`."""
    import h5py

    what, cls = f"imDataParams.{name}", _matlab_class(node)
    if not isinstance(node, h5py.Dataset):
        kind = "struct" if cls in ("struct", "") else f"{cls} group (sparse array or object)"
        raise InputError(path, f"{what} is a {kind}, expected a numeric array")
    if cls in ("cell", "struct") or h5py.check_ref_dtype(node.dtype) is not None:
        kind = "cell or struct array (object references)"
        raise InputError(path, f"{what} is a {kind}, expected a numeric array")
    if int(np.asarray(node.attrs.get("MATLAB_empty", 0)).reshape(-1)[0]):
        return np.zeros((0, 0))
    data = node[()]
    if cls == "char":
        return np.array("".join(map(chr, np.asarray(data).T.reshape(-1))))
    if data.dtype.names is not None:
        if set(data.dtype.names) != {"real", "imag"}:
            raise InputError(path, f"{what} has fields {data.dtype.names}, expected real, imag")
        parts = data["real"], data["imag"]
        data = np.empty(data.shape, np.complex64 if parts[0].itemsize == 4 else np.complex128)
        data.real, data.imag = parts
    elif data.dtype.kind not in "biuf":
        raise InputError(path, f"{what} has HDF5 type {data.dtype}, expected numbers")
    return np.asarray(data).T  # HDF5 dims are MATLAB's reversed (column-major)


def read_echo_mat(path: str | Path) -> EchoSet:
    """Read an ``imDataParams`` .mat file; :class:`InputError` names the file and the reason."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "file not found")
    fields = _load_v73(p) if _is_v73(p) else _load_v5(p)
    for name in ("images", "TE", "FieldStrength"):
        if name not in fields:
            raise InputError(p, f"imDataParams has no field {name!r}")
    images = np.asarray(fields["images"])
    if not np.iscomplexobj(images):
        raise InputError(p, "imDataParams.images is not complex (phase missing)")
    if images.ndim == 4:  # [nx, ny, nz, nTE] without the coil axis
        images = images[:, :, :, None, :]
    if images.ndim != 5 or images.size == 0:
        raise InputError(p, f"imDataParams.images has shape {images.shape}, expected 5D")
    if not np.isfinite(images).all():  # NaN/inf would reach the fit as a traceback
        raise InputError(p, "imDataParams.images holds NaN or infinite values")
    te = _numbers(p, fields, "TE")
    if te.size != images.shape[4]:
        raise InputError(p, f"{te.size} echo times for {images.shape[4]} echoes")
    if images.shape[4] < 2:
        raise InputError(p, "only one echo; fat-water separation needs several")
    b0 = float(_numbers(p, fields, "FieldStrength")[0])
    clockwise = bool(
        _numbers(p, {"PrecessionIsClockwise": 1} | fields, "PrecessionIsClockwise")[0] == 1
    )
    n_coils = images.shape[3]
    images = _combine_coils(images) if n_coils > 1 else images[:, :, :, 0, :]
    if not clockwise:
        images = np.conj(images)
    # [x, y, z, echo] -> [k = z, j = y, i = x, echo]
    # the transposed echoes copied contiguously once (a second copy only to cast to complex64)
    signal = np.ascontiguousarray(images.transpose(2, 1, 0, 3)).astype(np.complex64, copy=False)
    mask = None
    if "mask" in fields and np.asarray(fields["mask"]).size == images[..., 0].size:
        mask = np.asarray(fields["mask"]).reshape(images.shape[:3]).astype(bool).transpose(2, 1, 0)
    provenance = {
        "format": "ISMRM fat-water toolbox imDataParams (.mat)",
        "file": p.name,
        "precession_clockwise": clockwise,
        "conjugated": not clockwise,
        "coils": int(np.asarray(fields["images"]).shape[3])
        if np.ndim(fields["images"]) == 5
        else 1,
        "axes": "i = x, j = y, k = slice (file order); 1 mm voxels (no geometry in file)",
    }
    return EchoSet(signal, tuple(te), b0, np.eye(4), mask, str(p), provenance)


def _numbers(path: Path, fields: dict[str, object], name: str) -> np.ndarray:
    """Field ``name`` as a flat float array of at least one value, or InputError naming it (text,
    such as a char ``'1.5'``, is refused, in v5 and v7.3 files alike)."""
    value = np.asarray(fields[name])
    if value.dtype.kind in "US":
        text = "".join(str(v) for v in value.reshape(-1))[:40]
        raise InputError(path, f"imDataParams.{name} is text ({text!r}), expected numbers")
    try:
        values = np.asarray(fields[name], float).reshape(-1)
    except (TypeError, ValueError):
        raise InputError(path, f"imDataParams.{name}: expected numbers") from None
    if values.size == 0:
        raise InputError(path, f"imDataParams.{name} is empty")
    return values


def _combine_coils(images: np.ndarray) -> np.ndarray:
    """Coil combination ``[x, y, z, coil, echo] -> [x, y, z, echo]``: each coil's echoes are
    phase-referenced to its first echo's phase and weighted by its first echo's magnitude."""
    ref = images[:, :, :, :, :1]
    weights = np.conj(ref) / np.maximum(
        np.sqrt((np.abs(ref) ** 2).sum(axis=3, keepdims=True)), 1e-30
    )
    return (images * weights).sum(axis=3)
