"""The user's inputs of one analysis besides the study: the anchor, the clinical values and
manual ROI points.

Part of the one-study pipeline (:mod:`RefractureRiskLib.pipeline`, which re-exports these
names).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.jsonfile import read_json_file
from RefractureRiskLib.core.levels import level_index
from RefractureRiskLib.io.clinical_table import read_patient


def parse_anchor(text: str) -> tuple[str, tuple[float, float, float]]:
    """``"L3:12.5,-30,104"`` -> ("L3", (12.5, -30.0, 104.0)) (RAS mm)."""
    try:
        level, coords = text.split(":", 1)
        x, y, z = (float(v) for v in coords.split(","))
        level_index(level)
    except ValueError:
        raise InputError(
            "--anchor", f"{text!r}; expected LEVEL:x,y,z (RAS mm), e.g. L3:0,-20,40"
        ) from None
    return level.strip().upper(), (x, y, z)


def load_clinical(path: str | Path, patient_id: str | None = None) -> dict[str, Any]:
    """Clinical inputs of one patient: a JSON object, or a row of a clinical table.

    Read by the one clinical-table reader (``io/clinical_table.py`` ``read_patient``: file
    types, missing cells, numbers), the same reader as ``batch`` and the cohort table's.
    """
    return read_patient(path, patient_id)


def load_points(path: str | Path) -> dict[str, tuple[float, float, float]]:
    """Manual ROI points: JSON ``{"L1": [x, y, z], ...}`` (RAS mm) or a Slicer markups JSON."""
    p = Path(path)
    try:
        data = read_json_file(p, "points file")
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(p, f"cannot read points JSON ({err})") from None
    if isinstance(data, dict) and "markups" in data:  # Slicer .mrk.json: LPS or RAS per file
        return _markups_points(p, data["markups"])
    if not isinstance(data, dict):
        raise InputError(p, 'expected {"L1": [x, y, z], ...} in RAS mm')
    try:
        return {str(k).upper(): tuple(float(c) for c in v) for k, v in data.items()}  # type: ignore[misc]
    except (TypeError, ValueError):
        raise InputError(p, "each level needs [x, y, z] numbers in RAS mm") from None


def _markups_points(p: Path, markups: object) -> dict[str, tuple[float, float, float]]:
    """The labelled control points of a Slicer markups JSON's ``markups`` list, in RAS mm."""
    bad = 'expected "markups": [{"controlPoints": [{"label": "L1", "position": [x, y, z]}]}]'
    if not isinstance(markups, list) or not all(isinstance(m, dict) for m in markups):
        raise InputError(p, bad)
    points: dict[str, tuple[float, float, float]] = {}
    for markup in markups:
        system = markup.get("coordinateSystem", "LPS")
        if system not in ("LPS", "RAS"):
            raise InputError(p, f'coordinateSystem must be "LPS" or "RAS", got {system!r}')
        cps = markup.get("controlPoints", [])
        for n, cp in enumerate(cps if isinstance(cps, list) else [None]):
            pos = cp.get("position") if isinstance(cp, dict) else None
            if not isinstance(pos, list) or len(pos) != 3 or "label" not in cp:
                raise InputError(p, f"control point {n + 1}: {bad}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pos):
                raise InputError(p, f"control point {n + 1}: position must be 3 numbers")
            x, y, z = (float(v) for v in pos)
            points[str(cp["label"]).upper()] = (-x, -y, z) if system == "LPS" else (x, y, z)
    return points
