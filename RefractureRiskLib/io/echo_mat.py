"""ISMRM fat-water toolbox ``imDataParams`` .mat files -> :class:`EchoSet`.

The struct's fields are read by name (their order differs between files): ``images`` (complex,
``[nx, ny, nz, ncoils, nTE]``), ``TE`` (s), ``FieldStrength`` (T), ``PrecessionIsClockwise`` (1 =
clockwise; other values -> the data are conjugated) and the optional ``mask``. MATLAB v5 files are
read by :mod:`.mat_v5` (numpy + zlib), or with scipy when their layout is unusual; v7.3 files (HDF5)
need h5py and are refused with that reason when it is missing. Several coils are combined by the
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


def _is_v73(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(140)
        fh.seek(512)
        tail = fh.read(8)
    return b"MATLAB 7.3" in head or tail == _HDF5_MAGIC


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
        raise InputError(path, "no imDataParams struct (not an ISMRM fat-water toolbox file)")
    return dict(fields)


def _load_v5_scipy(path: Path) -> dict[str, object]:
    import scipy.io as sio

    try:
        doc = sio.loadmat(str(path), squeeze_me=False, struct_as_record=True)
    except Exception as err:  # scipy raises many types for a damaged file (MatReadError, ...)
        reason = f"not a readable MATLAB file ({type(err).__name__}: {err})"
        raise InputError(path, reason) from None
    if "imDataParams" not in doc:
        raise InputError(path, "no imDataParams struct (not an ISMRM fat-water toolbox file)")
    st = doc["imDataParams"]
    if st.dtype.names is None:
        raise InputError(path, "imDataParams is not a struct")
    rec = st.reshape(-1)[0]
    return {name: rec[name] for name in st.dtype.names}


def _load_v73(path: Path) -> dict[str, object]:
    try:
        import h5py
    except ModuleNotFoundError:
        raise InputError(
            path,
            "MATLAB v7.3 (HDF5) file; reading it needs h5py: pip install 'refracture-risk[mat73]'",
        ) from None
    try:
        with h5py.File(path, "r") as fh:
            if "imDataParams" not in fh:
                raise InputError(path, "no imDataParams struct (not an ISMRM toolbox file)")
            grp = fh["imDataParams"]
            out: dict[str, object] = {}
            for name in grp:
                arr = grp[name][()]
                if arr.dtype.names and {"real", "imag"} <= set(arr.dtype.names):
                    arr = arr["real"] + 1j * arr["imag"]
                out[name] = np.asarray(arr).T  # HDF5 stores MATLAB arrays transposed
            return out
    except OSError as err:
        raise InputError(path, f"MATLAB v7.3 (HDF5) file that cannot be read ({err})") from None


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
    """Field ``name`` as a flat float array of at least one value, or InputError naming it."""
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
