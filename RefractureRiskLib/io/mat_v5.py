"""A lean reader for one struct of numeric arrays in a MATLAB v5 MAT-file (numpy + zlib).

ISMRM fat-water toolbox files are MATLAB v5 (level 5) MAT-files holding one struct,
``imDataParams``, whose fields are numeric arrays. ``scipy.io`` reads them too, but importing it
cost ~0.14 s of a ~0.7 s cold ``fatwater`` command; this module reads exactly that layout:

- the 128-byte header (text, subsystem offset, version 0x0100, endian indicator ``IM``/``MI``);
- top-level data elements, ``miCOMPRESSED`` (zlib) or plain ``miMATRIX``, 8-byte aligned;
- a struct (``mxSTRUCT_CLASS``) of one element whose fields are real or complex numeric arrays
  (double, single, (u)int8-64, logical), returned in the numeric ``mi`` type they are stored in
  (as ``scipy.io.loadmat`` does by default); small data elements; empty fields.

Anything else (cells, chars, sparse, objects, nested structs, struct arrays, v4 or v7.3 files,
damaged data) raises :class:`UnsupportedMatError` with the reason, and the caller falls back to
``scipy.io`` (which reads or refuses it with its own message). Arrays keep MATLAB's shape
(column-major, at least 2D), as ``scipy.io.loadmat(squeeze_me=False)`` returns them. The header
and the top-level elements (inflated, perhaps already on a thread) come from :mod:`.mat_inflate`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from RefractureRiskLib.io.mat_inflate import UnsupportedMatError, next_element, top_elements

__all__ = ["UnsupportedMatError", "read_struct"]

_MI_TYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8"}
_MI_TYPES |= {12: "i8", 13: "u8"}
_MI_MATRIX = 14
_MX_STRUCT = 2
_MX_CLASSES = range(6, 16)  # double, single, int8, uint8, ..., uint64
_COMPLEX_FLAG, _LOGICAL_FLAG = 0x800, 0x200


class _Elements:
    """Data elements of a byte buffer, read in order from ``pos``."""

    def __init__(self, data: bytes | memoryview, order: str, pos: int = 0) -> None:
        self.data, self.order, self.pos = memoryview(data), order, pos

    def next(self) -> tuple[int, memoryview]:
        """The next element's ``mi`` type and its bytes (small data elements included)."""
        kind, raw, self.pos = next_element(self.data, self.order, self.pos)
        return kind, raw

    def numbers(self, what: str) -> np.ndarray:
        """The next element as a numeric array (its stored ``mi`` type)."""
        kind, raw = self.next()
        if kind not in _MI_TYPES:
            raise UnsupportedMatError(f"{what}: data type {kind} is not numeric")
        dtype = np.dtype(_MI_TYPES[kind]).newbyteorder(self.order)
        if len(raw) % dtype.itemsize:
            raise UnsupportedMatError(f"{what}: {len(raw)} bytes are not whole {dtype} values")
        return np.frombuffer(raw, dtype)


def _header(matrix: memoryview, order: str) -> tuple[_Elements, int, tuple[int, ...], str]:
    """A miMATRIX's sub-elements reader (after the name), flags, dimensions and name."""
    elems = _Elements(matrix, order)
    flags = int(elems.numbers("array flags")[0])
    dims = tuple(int(d) for d in elems.numbers("dimensions"))
    name = bytes(elems.numbers("array name")).decode("latin-1")
    return elems, flags, dims, name


def _numeric(elems: _Elements, flags: int, dims: tuple[int, ...], what: str) -> np.ndarray:
    """The real (and imaginary) part of a numeric array in MATLAB's shape, in the type it is
    stored in (as ``scipy.io.loadmat`` returns it by default; complex: ``complex64`` for 4-byte
    real parts, else ``complex128``)."""
    cls = flags & 0xFF
    if cls not in _MX_CLASSES:
        raise UnsupportedMatError(f"{what}: array class {cls} is not numeric")
    count = int(np.prod(dims))
    real = elems.numbers(what)
    if real.size != count:
        raise UnsupportedMatError(f"{what}: {real.size} values for shape {dims}")
    if not flags & _COMPLEX_FLAG:
        out = real.astype(real.dtype.newbyteorder("="))
    else:
        imag = elems.numbers(what)
        if imag.size != count:
            raise UnsupportedMatError(f"{what}: {imag.size} imaginary values for shape {dims}")
        out = np.empty(count, np.complex64 if real.itemsize == 4 else np.complex128)
        out.real, out.imag = real, imag
    return out.reshape(dims, order="F")


def _field(matrix: memoryview, order: str, what: str) -> np.ndarray:
    """One struct field (a miMATRIX) as a numeric array."""
    if len(matrix) == 0:  # an empty field, []
        return np.zeros((0, 0))
    elems, flags, dims, _ = _header(matrix, order)
    return _numeric(elems, flags, dims, what)


def _struct_fields(matrix: memoryview, order: str, name: str) -> dict[str, np.ndarray]:
    """The fields of the one-element struct in ``matrix`` by name."""
    elems, flags, dims, _ = _header(matrix, order)
    if flags & 0xFF != _MX_STRUCT:
        raise UnsupportedMatError(f"{name} is not a struct (class {flags & 0xFF})")
    if int(np.prod(dims)) != 1:
        raise UnsupportedMatError(f"{name} is a struct array of shape {dims}")
    width = int(elems.numbers("field name length")[0])
    names_raw = bytes(elems.numbers("field names"))
    if width <= 0 or len(names_raw) % width:
        raise UnsupportedMatError(f"{name}: field names do not fit length {width}")
    names = [
        names_raw[i : i + width].split(b"\0", 1)[0].decode("latin-1")
        for i in range(0, len(names_raw), width)
    ]
    out = {}
    for field in names:
        kind, sub = elems.next()
        if kind != _MI_MATRIX:
            raise UnsupportedMatError(f"{name}.{field}: element type {kind}, expected a matrix")
        out[field] = _field(sub, order, f"{name}.{field}")
    return out


def read_struct(path: str | Path, name: str) -> dict[str, np.ndarray] | None:
    """Fields of the top-level struct variable ``name`` of a v5 MAT-file; ``None`` when the file has
    no variable ``name``. :class:`UnsupportedMatError` when the file is not in this reader's layout
    (v4, v7.3, damaged, cells, ...; see the module text)."""
    for order, kind, raw in top_elements(path):
        if kind == _MI_MATRIX and _header(raw, order)[3] == name:
            return _struct_fields(raw, order, name)
    return None
