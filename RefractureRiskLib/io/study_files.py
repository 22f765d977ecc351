"""A :class:`Study` from NIfTI/NRRD map files, with the kind and unit of each given explicitly.

Image files carry no trustworthy unit, so the caller names it: PDFF as ``fraction``, ``percent``
or ``permille``; R2* as ``per_s``, ``per_ms`` or T2* as ``t2star_ms``/``t2star_s``; magnitude
images (water, fat, in/out-phase) as ``signal_au``. The converted range is still checked. Maps not
on the PDFF grid are resampled onto it (linear, NaN outside) and flagged in provenance.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.study import (
    MAP_KINDS,
    PatientInfo,
    SeriesProvenance,
    Study,
    StudyProvenance,
)
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.io.dicom_load import resample_onto
from RefractureRiskLib.io.dicom_units import PDFF_UNITS, R2S_UNITS, pdff_to_percent, to_r2s_per_s
from RefractureRiskLib.io.images import read_image

SIGNAL_UNITS = ("signal_au",)


def allowed_units(kind: str) -> tuple[str, ...]:
    """Units accepted for a map kind."""
    if kind == "pdff":
        return tuple(PDFF_UNITS)
    if kind == "r2s":
        return R2S_UNITS
    return SIGNAL_UNITS


def load_map_files(
    files: Mapping[str, str | Path],
    units: Mapping[str, str],
    *,
    vendor: str = "unknown",
    field_strength_t: float | None = None,
    echo_times_ms: tuple[float, ...] = (),
    patient: PatientInfo | None = None,
) -> Study:
    """Read map files (kind -> path) with explicit units (kind -> unit) into a Study.

    A PDFF map is required (it defines the grid). Every kind needs a unit in ``units``
    (magnitude kinds default to ``signal_au``).
    """
    if "pdff" not in files:
        raise InputError("files", f"a PDFF map is required; got kinds {sorted(files)}")
    unknown = [k for k in files if k not in MAP_KINDS]
    if unknown:
        raise InputError("files", f"unknown map kind(s) {unknown}; expected {MAP_KINDS}")
    order = ["pdff", *[k for k in files if k != "pdff"]]
    maps: dict[str, Volume] = {}
    prov: dict[str, SeriesProvenance] = {}
    ref: Volume | None = None
    for kind in order:
        path = Path(files[kind])
        volume, steps = _read_map(kind, path, units)
        resampled = False
        if ref is None:
            ref = volume
        elif not volume.same_grid(ref):
            steps.append(f"resampled (linear) from {volume.describe_geometry()} onto the PDFF grid")
            volume = resample_onto(volume, ref)
            resampled = True
        maps[kind] = volume
        prov[kind] = SeriesProvenance(
            kind=kind,
            source=str(path),
            classified_by=f"map file {path.name}: kind given by the user (not DICOM)",
            scaling=tuple(steps),
            resampled=resampled,
        )
    provenance = StudyProvenance(
        vendor=vendor,
        field_strength_t=field_strength_t,
        echo_times_ms=tuple(echo_times_ms),
        series=prov,
    )
    return Study(maps, provenance, patient or PatientInfo())


def _read_map(kind: str, path: Path, units: Mapping[str, str]) -> tuple[Volume, list[str]]:
    """One map file in the library's units (PDFF percent, R2* 1/s), with the steps taken;
    refuses a missing or invalid unit."""
    unit = units.get(kind, "signal_au" if kind not in ("pdff", "r2s") else None)
    if unit is None:
        raise InputError(
            path, f"the unit of the {kind} map must be given: one of {allowed_units(kind)}"
        )
    if unit not in allowed_units(kind):
        raise InputError(
            path, f"unit {unit!r} is not valid for {kind}; expected {allowed_units(kind)}"
        )
    volume = read_image(path)
    values = np.array(volume.array, dtype=np.float32)
    steps = [f"read {path.name} as {kind} in {unit} (unit given by the user)"]
    if kind == "pdff":
        values, text = pdff_to_percent(values, unit, source=str(path))
        steps.append(text)
    elif kind == "r2s":
        values, text = to_r2s_per_s(values, unit, source=str(path))
        steps.append(text)
    return Volume(values, volume.ijk_to_ras), steps
