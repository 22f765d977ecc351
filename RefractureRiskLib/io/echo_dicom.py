"""Multi-echo gradient-echo DICOM (raw echoes, not derived maps) -> :class:`EchoSet`.

Every image frame of the folder (classic single-frame files or enhanced multi-frame files) is
labelled with its component and echo:

- component, from ImageType / FrameType tokens (``M``/``MAGNITUDE``, ``P``/``PHASE``,
  ``R``/``REAL``, ``I``/``IMAGINARY``), else GE's raw image type (0043,102F: 0 magnitude,
  1 phase, 2 real, 3 imaginary);
- echo, from EchoNumbers, else the echo time (enhanced files carry it per frame).

Each (echo, component) stack is checked and assembled by :mod:`.dicom_volume`; every echo must
have magnitude and phase, or real and imaginary, on one common grid. Phase values (after the
rescale) are mapped to radians by their range: radians (|p| <= pi), degrees (<= 180),
milliradians (GE, <= ~3142), 12-bit stored (Siemens: -4096..4095 after its usual rescale, or
0..4095 raw); the rule used is recorded. The precession sense of the stored phase differs
between vendors and is not in the header: ``precession="auto"`` (default) fits a sample of
voxels both ways and keeps the sense with the smaller model residual (recorded too).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from RefractureRiskLib.core.echoes import EchoSet
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.io.dicom_scan import FrameRef, scan_files
from RefractureRiskLib.io.dicom_volume import plan_stack, read_stack

_TOKENS = {
    "M": "magnitude",
    "MAGNITUDE": "magnitude",
    "P": "phase",
    "PHASE": "phase",
    "R": "real",
    "REAL": "real",
    "I": "imaginary",
    "IMAGINARY": "imaginary",
}
_GE_RAW = {"0": "magnitude", "1": "phase", "2": "real", "3": "imaginary"}
#: ImageType tokens of derived maps: such frames are not raw echoes.
_DERIVED = {"FAT_FRACTION", "FAT_FRAC", "FF", "WATER", "FAT", "W", "F", "R2_STAR", "T2_STAR"}
_DERIVED.update({"R2_STAR_MAP", "IN_PHASE", "OUT_PHASE", "OPP_PHASE"})


def frame_component(frame: FrameRef) -> str | None:
    """``magnitude``, ``phase``, ``real``, ``imaginary`` or None (not a raw echo image)."""
    tokens = [t.upper() for t in frame.image_type]
    if _DERIVED & set(tokens[2:]):
        return None
    for t in tokens[2:]:
        if t in _TOKENS:
            return _TOKENS[t]
    for name, value in frame.private_hints:
        if name.startswith("GE (0043,102F)"):
            m = re.match(r"\s*(\d)", value)
            if m and m.group(1) in _GE_RAW:
                return _GE_RAW[m.group(1)]
    return None


def phase_to_radians(values: np.ndarray, where: str) -> tuple[np.ndarray, str]:
    """Map rescaled phase values to radians by their range; returns (radians, rule)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    top = max(abs(lo), abs(hi))
    if top <= np.pi * 1.001:
        return values.astype(np.float32), "radians as stored"
    if top <= 180.5:
        return np.deg2rad(values).astype(np.float32), "degrees -> radians"
    if lo < 0 and top <= 3142 * 1.001:
        return (values / 1000.0).astype(np.float32), "milliradians (GE) -> radians"
    if lo < 0 and top <= 4096:
        return (values * np.pi / 4096.0).astype(np.float32), "12-bit signed (Siemens) * pi/4096"
    if lo >= 0 and hi <= 4095:
        return ((values - 2048.0) * np.pi / 2048.0).astype(np.float32), "12-bit (v-2048)*pi/2048"
    raise InputError(where, f"phase values {lo:g}..{hi:g} match no known phase scaling")


def _echo_key(frame: FrameRef) -> tuple[int, float]:
    te = frame.echo_time_ms if frame.echo_time_ms is not None else -1.0
    return (frame.echo_number or 0, round(te, 3))


def _collect(
    root: Path, progress: Callable[[str], None] | None = None
) -> tuple[dict, set[float], set[str]]:
    """Raw echo frames under ``root`` by echo and component, field strengths and vendors.

    Echoes are keyed by EchoNumbers when every frame has one, else by echo time."""
    frames: dict[tuple[tuple[int, float], str], list[FrameRef]] = defaultdict(list)
    b0_values, vendors = set(), set()
    for f in scan_files(root, progress).files:
        for fr in f.frames:
            comp = frame_component(fr)
            if comp is None:
                continue
            frames[(_echo_key(fr), comp)].append(fr)
            if f.header.field_strength_t:
                b0_values.add(round(float(f.header.field_strength_t), 2))
            vendors.add(f.header.manufacturer)
    if not frames:
        raise InputError(root, "no raw echo images (magnitude/phase or real/imaginary) found")
    by_echo: dict[object, dict[str, list[FrameRef]]] = defaultdict(dict)
    use_numbers = all(k[0][0] > 0 for k in frames)
    for (key, comp), frs in frames.items():
        by_echo[key[0] if use_numbers else key[1]].setdefault(comp, []).extend(frs)
    return by_echo, b0_values, vendors


def _read_echo(root: Path, name: str, comps: dict[str, list[FrameRef]], grid):
    """One echo as complex voxels ``[k, j, i]``: (values, echo time ms, phase rule, grid)."""
    tes = {fr.echo_time_ms for frs in comps.values() for fr in frs}
    if None in tes or len({round(t, 2) for t in tes}) != 1:
        raise InputError(root, f"{name}: missing or inconsistent EchoTime {sorted(map(str, tes))}")
    if {"magnitude", "phase"} <= comps.keys():
        pair = ("magnitude", "phase")
    elif {"real", "imaginary"} <= comps.keys():
        pair = ("real", "imaginary")
    else:
        raise InputError(
            root,
            f"{name} has only {', '.join(sorted(comps))}: magnitude + phase or "
            "real + imaginary needed (phase missing)",
        )
    stacks = []
    for comp in pair:
        series = f"{name} {comp}"
        geom = plan_stack(comps[comp], series)
        if grid is None:
            grid = geom
        elif geom.shape != grid.shape or not np.allclose(
            geom.ijk_to_ras, grid.ijk_to_ras, atol=1e-3
        ):
            raise InputError(
                comps[comp][0].path,
                f"{series} is on another grid ({geom.describe()}) than echo 1 "
                f"({grid.describe()}): unequal geometry",
            )
        stacks.append(read_stack(geom, series))
    if pair[0] == "real":
        return stacks[0] + 1j * stacks[1], tes.pop(), None, grid
    rad, rule = phase_to_radians(stacks[1], str(comps["phase"][0].path))
    return stacks[0] * np.exp(1j * rad), tes.pop(), rule, grid


def read_echo_dicom(folder: str | Path, progress: Callable[[str], None] | None = None) -> EchoSet:
    """Read the raw multi-echo images under ``folder``, phase as stored (the precession sense
    is chosen by :func:`RefractureRiskLib.maps.fatwater.precession.choose_precession`, which
    needs the signal model). InputError names the reason. ``progress`` hears the header scan
    ("scanned k of n files")."""
    root = Path(folder)
    by_echo, b0_values, vendors = _collect(root, progress)
    if len(by_echo) < 3:
        raise InputError(
            root, f"{len(by_echo)} echo(es) found; fat-water separation with R2* needs at least 3"
        )
    echoes, te_ms, grid, rules = [], [], None, set()
    for ek in sorted(by_echo):
        values, te, rule, grid = _read_echo(root, f"echo {ek}", by_echo[ek], grid)
        echoes.append(values)
        te_ms.append(te)
        if rule:
            rules.add(rule)
    if not b0_values:
        raise InputError(root, "MagneticFieldStrength (0018,0087) missing: field strength unknown")
    if len(b0_values) > 1:
        raise InputError(root, f"echoes disagree on field strength: {sorted(b0_values)} T")
    provenance = {
        "format": "multi-echo DICOM",
        "folder": str(root),
        "vendor": ", ".join(sorted(v for v in vendors if v)) or "unknown",
        "components": "magnitude + phase" if rules else "real + imaginary",
        "phase_scaling": "; ".join(sorted(rules)) or "n/a",
    }
    echo_set = EchoSet(
        np.stack(echoes, axis=3).astype(np.complex64),
        tuple(t * 1e-3 for t in te_ms),
        float(b0_values.pop()),
        grid.ijk_to_ras,
        None,
        str(root),
        provenance,
    )
    return echo_set


def echo_source_files(folder: str | Path) -> list[Path]:
    """The files of the first echo's first component (magnitude, or real): the source images
    derived maps reference (one per slice for classic files; enhanced: the file(s) holding
    those frames)."""
    root = Path(folder)
    by_echo, _b0, _vendors = _collect(root)
    first = by_echo[min(by_echo)]
    comp = "magnitude" if "magnitude" in first else "real" if "real" in first else min(first)
    return sorted({fr.path for fr in first[comp]})
