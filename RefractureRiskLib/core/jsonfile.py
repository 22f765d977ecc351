"""The one reader of JSON files a user gives: clinical inputs, ROI points, model and patient files.

Strict on purpose, so that a damaged or hand-edited file is refused with a message naming the
file (and, where the parser knows it, the line and column) instead of being read differently from
what its author meant:

- UTF-8 text only (a leading byte-order mark is accepted); otherwise "not UTF-8 text at byte N".
- At most :data:`MAX_BYTES` bytes and :data:`MAX_DEPTH` levels of nested arrays/objects. Depth is
  checked on the text before parsing, so a deeply nested file never reaches Python's recursion
  limit.
- No repeated key in one object (which value was meant is unknowable), no ``NaN`` / ``Infinity``
  (not JSON; Python's ``json`` accepts them), no number that overflows a float (``1e999``), no
  integer too long to convert (more than :data:`MAX_INT_DIGITS` digits) and no string holding a
  lone UTF-16 surrogate (``"\\ud800"``: not Unicode text).

Every refusal is an :class:`InputError`. Standard library only (runs inside 3D Slicer).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from RefractureRiskLib.core.errors import InputError

#: Largest file read (bytes). Clinical, points, patient and model files are a few kB; 10 MB leaves
#: room for a model with a large covariance matrix or long provenance texts.
MAX_BYTES = 10 * 1024 * 1024
#: Deepest nesting of arrays and objects. The project's files nest 4-5 levels (Slicer markups: 4).
MAX_DEPTH = 64
#: Longest integer literal (digits): anything longer cannot become a finite float.
MAX_INT_DIGITS = 300

# Strings (skipped whole, linear time: unrolled loop, no nested quantifier), brackets and the
# non-JSON constants Python's json would accept.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|-?Infinity|NaN', re.DOTALL)


class _RefusedError(Exception):
    """Internal: raised inside json's hooks; turned into an InputError with the source."""


def read_json_file(path: str | Path, what: str = "JSON file") -> Any:
    """The parsed content of the JSON file at ``path``; ``what`` names it in messages.

    ``what`` is a short noun phrase such as ``"model file"`` or ``"clinical file"``. Raises
    :class:`InputError` (naming the file) when the file is missing, unreadable, too large, not
    UTF-8, or not strict JSON (see the module docstring).
    """
    p = Path(path)
    if not p.is_file():
        if p.exists():
            raise InputError(p, f"{what} is not a regular file")
        raise InputError(p, f"{what} not found")
    try:
        with open(p, "rb") as fp:
            data = fp.read(MAX_BYTES + 1)
    except OSError as err:
        raise InputError(p, f"cannot read {what} ({err.strerror or type(err).__name__})") from None
    if len(data) > MAX_BYTES:
        raise InputError(p, f"{what} is larger than {MAX_BYTES // (1024 * 1024)} MB")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            p, f"{what} is not UTF-8 text at byte {err.start} (save it as UTF-8)"
        ) from None
    return parse_json_text(text, p, what)


def parse_json_text(text: str, source: str | Path, what: str = "JSON") -> Any:
    """Strict JSON from ``text``; ``source`` (a file name or field) is named in every refusal."""
    _prescan(text, source, what)
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
        )
    except json.JSONDecodeError as err:
        raise InputError(
            source,
            f"{what} is not valid JSON at line {err.lineno}, column {err.colno} ({err.msg})",
        ) from None
    except _RefusedError as err:
        raise InputError(source, f"{what}: {err}") from None
    except RecursionError:  # not reachable after the depth check; kept as the last guard
        raise InputError(source, f"{what} is nested too deeply") from None
    bad = _lone_surrogate(value)
    if bad is not None:
        raise InputError(source, f"{what}: string {bad!r} is not Unicode text (lone surrogate)")
    return value


def _prescan(text: str, source: str | Path, what: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH and NaN/Infinity, with line and column."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise InputError(
                    source,
                    f"{what} nests arrays/objects more than {MAX_DEPTH} levels deep "
                    f"({_where(text, match.start())})",
                )
        elif token in ("]", "}"):
            depth -= 1
        elif not token.startswith('"'):
            raise InputError(
                source,
                f"{what}: {token} is not allowed in JSON, give a number or null "
                f"({_where(text, match.start())})",
            )


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    column = pos - text.rfind("\n", 0, pos)
    return f"line {line}, column {column}"


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _RefusedError(f"duplicate key {key!r} in one object (which value is meant?)")
        out[key] = value
    return out


def _constant(name: str) -> float:
    raise _RefusedError(f"{name} is not allowed in JSON, give a number or null")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _RefusedError(f"number {text[:40]} is too large")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _RefusedError(f"integer of {len(text)} characters is too large")
    return int(text)


def _lone_surrogate(value: Any) -> str | None:
    """The first string (key or value) that is not encodable Unicode, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings = [item]
        elif isinstance(item, dict):
            strings = list(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for s in strings:
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                return s[:40]
    return None
