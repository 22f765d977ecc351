"""Multi-echo gradient-echo DICOM (raw echoes, not derived maps) -> :class:`EchoSet`.

Every image frame of the folder (classic single-frame files or enhanced multi-frame files) is
labelled with its component and echo:

- component, from ImageType / FrameType tokens (``M``/``MAGNITUDE``, ``P``/``PHASE``,
  ``R``/``REAL``, ``I``/``IMAGINARY``), else GE's raw image type (0043,102F: 0 magnitude,
  1 phase, 2 real, 3 imaginary);
- echo, from EchoNumbers, else the echo time (enhanced files carry it per frame).

Scanner-computed B0 field maps are not raw echoes and are left out, with the reason kept for
the refusal message: frames typed ``FIELD_MAP``/``B0_MAP`` (Philips enhanced files), frames
whose real-world value unit is Hz, and GE B0-map series (pulse sequence (0019,109C)/(0019,109E)
``B0map``, ``3db0map``, ``B0rf``: the Hz map and its magnitude share one series, one echo time
and (0043,102F) = 0, so neither can be used as an echo).

Each (echo, component) stack is checked and assembled by :mod:`.dicom_volume`; every echo must
have magnitude and phase, or real and imaginary, on one common grid. Phase values (after the
rescale) are mapped to radians by the vendor's convention where it is known (Siemens 12-bit:
-4096..4094 after its usual rescale, or 0..4095 raw) and otherwise by their range: radians
(|p| <= pi), degrees (<= 180), milliradians (GE, <= ~3142), 12-bit; the rule used is
recorded. The precession sense of the stored phase differs between vendors and is not in the
header: ``precession="auto"`` (default) fits a sample of voxels both ways and keeps the sense
with the smaller model residual (recorded too).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from RefractureRiskLib.core.echoes import EchoSet
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.io.dicom_scan import FrameRef, scan_files
from RefractureRiskLib.io.dicom_volume import StackGeometry, plan_stack, read_stack

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
#: ImageType / FrameType tokens of a scanner-computed B0 field map.
_FIELD_MAP = {"FIELD_MAP", "B0_MAP", "B0MAP", "FIELDMAP"}
#: GE pulse-sequence names (private (0019,109C) / (0019,109E)) of B0-map series.
_GE_B0 = re.compile(r"b0", re.IGNORECASE)


def field_map_reason(frame: FrameRef) -> str | None:
    """Why ``frame`` belongs to a scanner-computed B0 field map (not a raw echo), or None."""
    tokens = {t.upper() for t in frame.image_type}
    if tokens & _FIELD_MAP:
        kind = "FrameType" if frame.frame_index is not None else "ImageType"
        return f"{kind} {sorted(tokens & _FIELD_MAP)[0]} (scanner-computed B0 field map)"
    if frame.rwv is not None and "Hz" in frame.rwv[2:]:
        return "real-world value unit Hz (scanner-computed B0 field map)"
    for name, value in frame.private_hints:
        if name.startswith("GE (0019,") and _GE_B0.search(value):
            return (
                f"GE B0-map series, {name} {value!r}: the scanner's field map in Hz and its "
                "magnitude at one echo time, no phase"
            )
    return None


def frame_component(frame: FrameRef) -> str | None:
    """``magnitude``, ``phase``, ``real``, ``imaginary`` or None (not a raw echo image, e.g. a
    derived map or a scanner-computed field map: :func:`field_map_reason`)."""
    tokens = [t.upper() for t in frame.image_type]
    if _DERIVED & set(tokens[2:]) or field_map_reason(frame):
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


def _signed_12bit(values: np.ndarray) -> tuple[np.ndarray, str]:
    return (values * np.pi / 4096.0).astype(np.float32), "12-bit signed (Siemens) * pi/4096"


def _unsigned_12bit(values: np.ndarray) -> tuple[np.ndarray, str]:
    return ((values - 2048.0) * np.pi / 2048.0).astype(np.float32), "12-bit (v-2048)*pi/2048"


def phase_to_radians(values: np.ndarray, where: str, vendor: str = "") -> tuple[np.ndarray, str]:
    """Map rescaled phase values to radians; returns (radians, rule).

    Siemens phase is 12-bit whatever part of the range a volume uses (a smooth phase image
    can stay within +-3142, which the range alone would take for GE milliradians); other
    vendors' scaling is told by the range."""
    lo, hi = float(np.min(values)), float(np.max(values))
    top = max(abs(lo), abs(hi))
    if vendor.upper().startswith("SIEMENS") and top > np.pi * 1.001:
        if lo < 0 and top <= 4096:
            return _signed_12bit(values)
        if lo >= 0 and hi <= 4095:
            return _unsigned_12bit(values)
    if top <= np.pi * 1.001:
        return values.astype(np.float32), "radians as stored"
    if top <= 180.5:
        return np.deg2rad(values).astype(np.float32), "degrees -> radians"
    if lo < 0 and top <= 3142 * 1.001:
        return (values / 1000.0).astype(np.float32), "milliradians (GE) -> radians"
    if lo < 0 and top <= 4096:
        return _signed_12bit(values)
    if lo >= 0 and hi <= 4095:
        return _unsigned_12bit(values)
    raise InputError(where, f"phase values {lo:g}..{hi:g} match no known phase scaling")


def _echo_key(frame: FrameRef) -> tuple[int, float]:
    te = frame.echo_time_ms if frame.echo_time_ms is not None else -1.0
    return (frame.echo_number or 0, round(te, 3))


@dataclass(frozen=True)
class EchoFrames:
    """The raw echo frames of a folder, before any pixel is read.

    ``by_echo``: echo key (EchoNumbers when every frame has one, else the echo time in ms)
    -> component -> frames. ``skipped``: one line per kind of scanner-computed field map left
    out (why, and how many frames)."""

    by_echo: dict[object, dict[str, list[FrameRef]]]
    field_strengths_t: frozenset[float]
    vendors: frozenset[str]
    skipped: tuple[str, ...]

    @property
    def vendor(self) -> str:
        """The one manufacturer of the frames ('' when none or several)."""
        return next(iter(self.vendors)) if len(self.vendors) == 1 else ""

    def why_no_echoes(self) -> str:
        """What was left out, for refusal messages ('' when nothing was)."""
        return f" ({'; '.join(self.skipped)})" if self.skipped else ""


def collect_echo_frames(root: Path, progress: Callable[[str], None] | None = None) -> EchoFrames:
    """Raw echo frames under ``root`` by echo and component (see :class:`EchoFrames`)."""
    frames: dict[tuple[tuple[int, float], str], list[FrameRef]] = defaultdict(list)
    b0_values, vendors = set(), set()
    skipped: dict[str, int] = defaultdict(int)
    for f in scan_files(root, progress).files:
        for fr in f.frames:
            reason = field_map_reason(fr)
            if reason:
                skipped[reason] += 1
            comp = frame_component(fr)
            if comp is None:
                continue
            frames[(_echo_key(fr), comp)].append(fr)
            if f.header.field_strength_t:
                b0_values.add(round(float(f.header.field_strength_t), 2))
            vendors.add(f.header.manufacturer)
    notes = tuple(f"{n} frame(s) left out: {why}" for why, n in skipped.items())
    if not frames:
        why = f" ({'; '.join(notes)})" if notes else ""
        raise InputError(root, f"no raw echo images (magnitude/phase or real/imaginary) found{why}")
    by_echo: dict[object, dict[str, list[FrameRef]]] = defaultdict(dict)
    use_numbers = all(k[0][0] > 0 for k in frames)
    for (key, comp), frs in frames.items():
        by_echo[key[0] if use_numbers else key[1]].setdefault(comp, []).extend(frs)
    return EchoFrames(dict(by_echo), frozenset(b0_values), frozenset(vendors), notes)


def read_component(
    frames: list[FrameRef], series: str, component: str, vendor: str = ""
) -> tuple[np.ndarray, StackGeometry, str | None]:
    """One component of one echo: voxels ``[k, j, i]`` (phase in radians), its checked grid
    and the phase rule (None for other components)."""
    geom = plan_stack(frames, series)
    values = read_stack(geom, series)
    if component != "phase":
        return values, geom, None
    rad, rule = phase_to_radians(values, str(frames[0].path), vendor)
    return rad, geom, rule


def _read_echo(root: Path, name: str, comps: dict[str, list[FrameRef]], grid, vendor: str):
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
    stacks, rule = [], None
    for comp in pair:
        values, geom, comp_rule = read_component(comps[comp], f"{name} {comp}", comp, vendor)
        rule = rule or comp_rule
        if grid is None:
            grid = geom
        elif geom.shape != grid.shape or not np.allclose(
            geom.ijk_to_ras, grid.ijk_to_ras, atol=1e-3
        ):
            raise InputError(
                comps[comp][0].path,
                f"{name} {comp} is on another grid ({geom.describe()}) than echo 1 "
                f"({grid.describe()}): unequal geometry",
            )
        stacks.append(values)
    if pair[0] == "real":
        return stacks[0] + 1j * stacks[1], tes.pop(), None, grid
    return stacks[0] * np.exp(1j * stacks[1]), tes.pop(), rule, grid


def read_echo_dicom(folder: str | Path, progress: Callable[[str], None] | None = None) -> EchoSet:
    """Read the raw multi-echo images under ``folder``, phase as stored (the precession sense
    is chosen by :func:`RefractureRiskLib.maps.fatwater.precession.choose_precession`, which
    needs the signal model). InputError names the reason. ``progress`` hears the header scan
    ("scanned k of n files")."""
    root = Path(folder)
    found = collect_echo_frames(root, progress)
    by_echo, b0_values, vendors = found.by_echo, set(found.field_strengths_t), found.vendors
    if len(by_echo) < 3:
        raise InputError(
            root,
            f"{len(by_echo)} echo(es) found{found.why_no_echoes()}; fat-water separation with "
            "R2* needs at least 3",
        )
    echoes, te_ms, grid, rules = [], [], None, set()
    for ek in sorted(by_echo):
        values, te, rule, grid = _read_echo(root, f"echo {ek}", by_echo[ek], grid, found.vendor)
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
    by_echo = collect_echo_frames(Path(folder)).by_echo
    first = by_echo[min(by_echo)]
    comp = "magnitude" if "magnitude" in first else "real" if "real" in first else min(first)
    return sorted({fr.path for fr in first[comp]})
