"""A MATLAB v5 MAT-file's top-level data elements, compressed ones inflated; optionally read on
a thread started before numpy is imported.

A cold ``fatwater`` command imports numpy (~0.06-0.08 s) before it can parse its input, and
inflating an ISMRM case's ``miCOMPRESSED`` element takes ~0.02 s. File reads and zlib release
the GIL, so :func:`start_reading` lets the machine's other core read and inflate the file while
the command's main thread imports; :func:`top_elements` takes that result (or reads the file
itself when nobody started it). Standard library only: importing this module loads no numpy.

The element layout (:mod:`.mat_v5` parses the elements' contents): a 128-byte header (text,
subsystem offset, version 0x0100, endian indicator ``IM``/``MI``), then 8-byte tagged data
elements, 8-byte aligned, or 4-byte-tagged small ones; a ``miCOMPRESSED`` element is a zlib
stream of one more element.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

MI_COMPRESSED = 15


class UnsupportedMatError(Exception):
    """The file is not in the layout this reader handles (the message says what)."""


def next_element(data: memoryview, order: str, pos: int) -> tuple[int, memoryview, int]:
    """The data element at ``pos``: its ``mi`` type, its bytes (small data elements included)
    and the position of the next element."""
    if pos + 8 > len(data):
        raise UnsupportedMatError("truncated data element")
    kind, nbytes = struct.unpack_from(order + "II", data, pos)
    if kind >> 16:  # small data element: 2-byte size, 2-byte type, 4 bytes of data
        size, kind = kind >> 16, kind & 0xFFFF
        return kind, data[pos + 4 : pos + 4 + size], pos + 8
    start = pos + 8
    end = start + nbytes
    if end > len(data):
        raise UnsupportedMatError("data element runs past the end of the file")
    return kind, data[start:end], end if kind == MI_COMPRESSED else start + (nbytes + 7) // 8 * 8


def byte_order(data: bytes) -> str:
    """``"<"`` or ``">"`` from a v5 header; :class:`UnsupportedMatError` for anything else."""
    if len(data) < 128:
        raise UnsupportedMatError("shorter than a MAT-file header")
    endian = data[126:128]
    if endian not in (b"IM", b"MI"):
        raise UnsupportedMatError("no MATLAB v5 endian indicator")
    order = "<" if endian == b"IM" else ">"
    if struct.unpack_from(order + "H", data, 124)[0] != 0x0100:
        raise UnsupportedMatError("not a version 5 MAT-file")
    return order


def _elements(path: Path) -> Iterator[tuple[str, int, memoryview]]:
    """``(byte order, mi type, bytes)`` of each top-level element in file order, compressed ones
    inflated (to the one element their stream holds)."""
    data = path.read_bytes()
    order = byte_order(data)
    view, pos = memoryview(data), 128
    while pos < len(view):
        kind, raw, pos = next_element(view, order, pos)
        if kind == MI_COMPRESSED:
            try:
                inner = memoryview(zlib.decompress(raw))
            except zlib.error as err:
                raise UnsupportedMatError(f"compressed element: {err}") from None
            kind, raw, _ = next_element(inner, order, 0)
        yield order, kind, raw


class _Reading:
    """The elements of one file as a thread reads them: the list so far and, once the thread
    stops, the error that stopped it (if any)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.identity = _identity(path)
        self.items: list[tuple[str, int, memoryview]] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="mat-inflate")
        self.thread.start()

    def _run(self) -> None:
        try:
            self.items.extend(_elements(self.path))
        except BaseException as err:  # raised to the reader at the element where it arose
            self.error = err

    def replay(self) -> Iterator[tuple[str, int, memoryview]]:
        self.thread.join()
        yield from self.items
        if self.error is not None:
            raise self.error


_started: dict[str, _Reading] = {}
_started_lock = threading.Lock()


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def start_reading(path: str | Path) -> None:
    """Read and inflate ``path`` (a ``.mat`` file; anything else is ignored) on a thread, for
    the next :func:`top_elements` call on the same, unchanged file. Errors are raised there."""
    p = Path(path)
    if p.suffix.lower() != ".mat" or not p.is_file():
        return
    with _started_lock:
        _started[os.path.abspath(p)] = _Reading(p)


def forget_reading(path: str | Path) -> None:
    """Drop what :func:`start_reading` started for ``path`` and nobody read (the caller failed
    before reading it): its elements are not kept for a later call."""
    with _started_lock:
        _started.pop(os.path.abspath(Path(path)), None)


def top_elements(path: str | Path) -> Iterator[tuple[str, int, memoryview]]:
    """``(byte order, mi type, bytes)`` of each top-level data element of the v5 MAT-file
    ``path``, in file order, ``miCOMPRESSED`` ones inflated: from :func:`start_reading`'s thread
    when it read this file as it is now, else read here (lazily: a caller that stops early
    inflates no further). :class:`UnsupportedMatError` (raised at the element it concerns)
    when the file is not a v5 MAT-file or an element is damaged."""
    p = Path(path)
    with _started_lock:
        reading = _started.pop(os.path.abspath(p), None)
    if reading is not None and reading.identity is not None and reading.identity == _identity(p):
        return reading.replay()
    return _elements(p)
