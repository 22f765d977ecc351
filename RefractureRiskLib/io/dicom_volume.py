"""Volume assembly: order frames along the slice normal, check the stack, read and rescale pixels.

Slices are ordered by their position projected on the slice normal (row direction x column
direction), never by InstanceNumber. The stack must be regular: one orientation, one image size,
one pixel spacing, unique positions, uniform spacing, and no in-plane shift between slices (gantry
tilt / sheared stacks are refused rather than silently mis-placed). Every refusal is an
:class:`InputError` naming the series (and a file) and the reason.

Geometry: DICOM LPS in, ``ijk_to_ras`` (RAS, mm) out; voxel arrays are ``[k, j, i]`` with k along
the normal in increasing position, j down the rows, i along the columns.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.extras import install_hint
from RefractureRiskLib.core.volume import LPS_TO_RAS
from RefractureRiskLib.io.dicom_scan import FrameRef

#: Positions closer than this along the normal are the same slice (mm).
DUPLICATE_TOL_MM = 1e-3
#: Relative tolerance on slice spacing and in-plane drift (fraction of the slice spacing).
SPACING_REL_TOL = 0.01
SPACING_ABS_TOL_MM = 0.01
ORIENTATION_TOL = 1e-4
#: Plausible in-plane pixel spacing (mm).
MIN_PIXEL_SPACING_MM, MAX_PIXEL_SPACING_MM = 0.05, 20.0
#: Allowed deviation of the orientation vectors from unit length and from orthogonality.
ORIENTATION_UNIT_TOL = 1e-3


@dataclass(frozen=True)
class StackGeometry:
    """A checked slice stack: frames in slice order and the grid they lie on."""

    frames: tuple[FrameRef, ...]  # sorted by position along the normal
    ijk_to_ras: npt.NDArray[np.float64]
    slice_spacing_mm: float
    notes: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(nk, nj, ni)`` of the assembled volume."""
        f = self.frames[0]
        return (len(self.frames), f.rows, f.cols)

    def describe(self) -> str:
        """One line for tables: size, spacing and orientation."""
        nk, nj, ni = self.shape
        sp = np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)
        normal = self.ijk_to_ras[:3, 2] / sp[2]
        axis = "RAS"[int(np.argmax(np.abs(normal)))]
        plane = {"R": "sagittal", "A": "coronal", "S": "axial"}[axis]
        oblique = "" if np.max(np.abs(normal)) > 1 - 1e-3 else " oblique"
        return f"{ni}x{nj}x{nk} {sp[0]:.3g}x{sp[1]:.3g}x{sp[2]:.3g} mm {plane}{oblique}"


def _name(frame: FrameRef) -> str:
    name = frame.path.name
    return f"{name} frame {frame.frame_index + 1}" if frame.frame_index is not None else name


def plan_stack(frames: Sequence[FrameRef], series: str) -> StackGeometry:
    """Check ``frames`` form one regular stack and return it in slice order.

    ``series`` names the series in messages. Raises :class:`InputError` on missing geometry,
    mixed sizes/orientations/pixel spacings, duplicate positions, missing slices, non-uniform
    spacing and gantry tilt.
    """
    if not frames:
        raise InputError(series, "no images")
    for f in frames:
        _check_frame(f, series)
    _check_alike(frames, series)
    first = frames[0]
    ref_ori = np.asarray(first.orientation, float)
    row_dir, col_dir = ref_ori[:3], ref_ori[3:]
    if abs(np.linalg.norm(row_dir) - 1) > 1e-3 or abs(np.linalg.norm(col_dir) - 1) > 1e-3:
        raise InputError(series, f"ImageOrientationPatient {_fmt(ref_ori)} is not unit length")
    normal = np.cross(row_dir, col_dir)
    pos = np.array([f.position_lps for f in frames], float)
    dist = pos @ normal
    order = np.argsort(dist, kind="stable")
    dist, pos = dist[order], pos[order]
    ordered = tuple(frames[int(i)] for i in order)
    notes: list[str] = []
    if len(ordered) == 1:
        spacing = first.spacing_between_slices_mm or first.slice_thickness_mm or 1.0
        notes.append(f"single slice: thickness {spacing:g} mm taken from the header")
    else:
        spacing = _regular_spacing(ordered, dist, series)
        _check_not_tilted(ordered, pos, dist, normal, first.gantry_tilt_deg, series)
    ref_ps = np.asarray(first.pixel_spacing_mm, float)
    col_sp, row_sp = float(ref_ps[1]), float(ref_ps[0])
    lps = np.eye(4)
    lps[:3, 0] = row_dir * col_sp  # i runs along a row (columns)
    lps[:3, 1] = col_dir * row_sp  # j runs down a column (rows)
    lps[:3, 2] = normal * spacing
    lps[:3, 3] = pos[0]
    return StackGeometry(ordered, LPS_TO_RAS @ lps, float(spacing), tuple(notes))


def _check_frame(f: FrameRef, series: str) -> None:
    """One frame can be placed: position, orientation and spacing given, one sample per pixel."""
    if f.position_lps is None or f.orientation is None or f.pixel_spacing_mm is None:
        missing = [
            n
            for n, v in (
                ("ImagePositionPatient", f.position_lps),
                ("ImageOrientationPatient", f.orientation),
                ("PixelSpacing", f.pixel_spacing_mm),
            )
            if v is None
        ]
        raise InputError(series, f"{_name(f)} has no {', '.join(missing)}: cannot place it")
    if f.pixel_problem is not None:
        raise InputError(series, f.pixel_problem)
    if f.samples_per_pixel != 1:
        raise InputError(series, f"{_name(f)} has {f.samples_per_pixel} samples per pixel (colour)")
    check_frame_geometry(f, series)


def _check_alike(frames: Sequence[FrameRef], series: str) -> None:
    """Every frame has the first one's image size, orientation and pixel spacing."""
    _check_same(frames, series, "image size", lambda f: (f.rows, f.cols), "{1}x{0}")
    first = frames[0]
    ref_ori = np.asarray(first.orientation, float)
    for f in frames[1:]:
        if np.max(np.abs(np.asarray(f.orientation) - ref_ori)) > ORIENTATION_TOL:
            raise InputError(
                series,
                f"mixed slice orientations: {_name(f)} has ImageOrientationPatient "
                f"{_fmt(f.orientation)} but {_name(first)} has {_fmt(first.orientation)}",
            )
    ref_ps = np.asarray(first.pixel_spacing_mm, float)
    for f in frames[1:]:
        if np.max(np.abs(np.asarray(f.pixel_spacing_mm) - ref_ps)) > 1e-4:
            raise InputError(
                series,
                f"mixed pixel spacings: {_name(f)} has {_fmt(f.pixel_spacing_mm)} mm but "
                f"{_name(first)} has {_fmt(first.pixel_spacing_mm)} mm",
            )


def _regular_spacing(ordered: Sequence[FrameRef], dist: np.ndarray, series: str) -> float:
    """The slice spacing (mm) of frames at ``dist`` along the normal (sorted): refused when two
    share a position, a slice is missing or the spacing is not uniform."""
    gaps = np.diff(dist)
    dup = np.flatnonzero(gaps < DUPLICATE_TOL_MM)
    if dup.size:
        a, b = ordered[dup[0]], ordered[dup[0] + 1]
        raise InputError(
            series,
            f"duplicate slice position {dist[dup[0]]:.3f} mm along the normal: {_name(a)} "
            f"and {_name(b)} ({dup.size} duplicate(s) in {len(ordered)} images)",
        )
    spacing = _typical_gap(gaps)
    tol = max(SPACING_ABS_TOL_MM, SPACING_REL_TOL * spacing)
    bad = np.flatnonzero(np.abs(gaps - spacing) > tol)
    if bad.size:
        i = int(bad[0])
        ratio = gaps[i] / spacing
        a, b = _name(ordered[i]), _name(ordered[i + 1])
        if abs(ratio - round(ratio)) * spacing <= tol and round(ratio) >= 2:
            n_missing = round(ratio) - 1
            raise InputError(
                series,
                f"missing slice(s): gap of {gaps[i]:.3f} mm between {a} and {b} where the "
                f"spacing is {spacing:.3f} mm ({n_missing} slice(s) missing)",
            )
        raise InputError(
            series,
            f"inconsistent slice spacing: {gaps[i]:.3f} mm between {a} and {b}, "
            f"{spacing:.3f} mm elsewhere (spacings {_fmt(np.unique(np.round(gaps, 3)))})",
        )
    return spacing


def _check_not_tilted(
    ordered: Sequence[FrameRef],
    pos: np.ndarray,
    dist: np.ndarray,
    normal: np.ndarray,
    tilt: float | None,
    series: str,
) -> None:
    """Refuse a stack whose slice positions drift in-plane (gantry tilt, shear); ``tilt`` is the
    header's GantryDetectorTilt (deg), named in the message."""
    drift = (pos[-1] - pos[0]) - (dist[-1] - dist[0]) * normal
    drift_mm = float(np.linalg.norm(drift))
    extent = float(dist[-1] - dist[0])
    if drift_mm > max(0.05, 2e-3 * extent):
        angle = float(np.degrees(np.arctan2(drift_mm, extent)))
        extra = f", GantryDetectorTilt {tilt:g} deg" if tilt else ""
        raise InputError(
            series,
            f"gantry tilt / sheared stack: slice positions shift {drift_mm:.2f} mm in-plane "
            f"from {_name(ordered[0])} to {_name(ordered[-1])} ({angle:.1f} deg from the "
            f"slice normal{extra}); tilted stacks are not supported",
        )


def check_frame_geometry(f: FrameRef, series: str) -> None:
    """Refuse a frame whose geometry tags are not finite or not plausible.

    PixelSpacing finite and within [:data:`MIN_PIXEL_SPACING_MM`, :data:`MAX_PIXEL_SPACING_MM`]
    (MR maps are 0.3-5 mm; the bounds catch zero, negative, metres and swapped units);
    SliceThickness, when present, finite and >= 0; ImageOrientationPatient six finite numbers
    whose row and column directions are unit vectors and orthogonal (within
    :data:`ORIENTATION_UNIT_TOL`); ImagePositionPatient finite. The message names the file and
    the tag (enhanced files: the same tags inside the functional groups).
    """
    where = f"{f.path}" + (f" frame {f.frame_index + 1}" if f.frame_index is not None else "")

    def refuse(reason: str) -> None:
        raise InputError(series, f"{where}: {reason}")

    spacing = np.asarray(f.pixel_spacing_mm, float)
    if not np.all(np.isfinite(spacing)) or not np.all(
        (spacing >= MIN_PIXEL_SPACING_MM) & (spacing <= MAX_PIXEL_SPACING_MM)
    ):
        refuse(
            f"(0028,0030) PixelSpacing {_fmt(spacing)} mm is not plausible: expected two finite "
            f"values from {MIN_PIXEL_SPACING_MM:g} to {MAX_PIXEL_SPACING_MM:g} mm",
        )
    thickness = f.slice_thickness_mm
    if thickness is not None and not (np.isfinite(thickness) and thickness >= 0):
        refuse(f"(0018,0050) SliceThickness {thickness:g} mm must be a finite number >= 0")
    ori = np.asarray(f.orientation, float)
    if not np.all(np.isfinite(ori)):
        refuse(f"(0020,0037) ImageOrientationPatient {_fmt(ori)} must be six finite numbers")
    row_dir, col_dir = ori[:3], ori[3:]
    norms = (float(np.linalg.norm(row_dir)), float(np.linalg.norm(col_dir)))
    if max(abs(n - 1) for n in norms) > ORIENTATION_UNIT_TOL:
        refuse(
            f"(0020,0037) ImageOrientationPatient {_fmt(ori)}: row and column directions must "
            f"be unit vectors, lengths are {norms[0]:.4g} and {norms[1]:.4g}",
        )
    dot = float(row_dir @ col_dir)
    if abs(dot) > ORIENTATION_UNIT_TOL:
        refuse(
            f"(0020,0037) ImageOrientationPatient {_fmt(ori)}: row and column directions must "
            f"be orthogonal, their dot product is {dot:.4g}",
        )
    pos = np.asarray(f.position_lps, float)
    if not np.all(np.isfinite(pos)):
        refuse(f"(0020,0032) ImagePositionPatient {_fmt(pos)} must be three finite numbers")


def _typical_gap(gaps: np.ndarray) -> float:
    """The most common gap between neighbouring slices (ties: the smallest), so one or two
    missing slices do not change the spacing estimate."""
    rounded = np.round(gaps, 2)
    values, counts = np.unique(rounded, return_counts=True)
    best = values[counts == counts.max()].min()
    return float(np.mean(gaps[rounded == best]))


def _check_same(frames, series, what, key, fmt) -> None:
    ref = key(frames[0])
    for f in frames[1:]:
        if key(f) != ref:
            n_ref = sum(1 for g in frames if key(g) == ref)
            raise InputError(
                series,
                f"mixed {what}s: {_name(f)} is {fmt.format(*key(f))} but {n_ref} image(s) such "
                f"as {_name(frames[0])} are {fmt.format(*ref)}",
            )


def _fmt(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"


# -- pixels -------------------------------------------------------------------------------------


def _native_dtype(f: FrameRef) -> np.dtype | None:
    if f.bits_allocated not in (8, 16, 32):
        return None
    if f.pixel_representation == 1 and f.bits_stored != f.bits_allocated:
        return None  # signed with padding bits: let pydicom sign-extend
    kind = "i" if f.pixel_representation == 1 else "u"
    return np.dtype(f"<{kind}{f.bits_allocated // 8}")


def value_mapping(frame: FrameRef, use_rwv: bool = True) -> tuple[float, float]:
    """(slope, intercept) from stored to values: the real-world value mapping when present
    (it carries the unit), else the modality rescale."""
    if use_rwv and frame.rwv is not None:
        return frame.rwv[0], frame.rwv[1]
    return frame.slope, frame.intercept


def read_stack(
    geometry: StackGeometry,
    series: str,
    out: npt.NDArray[np.float32] | None = None,
    use_rwv: bool = True,
) -> npt.NDArray[np.float32]:
    """Decoded, rescaled (per frame) voxels ``[k, j, i]`` as float32.

    Each frame's values are ``stored * slope + intercept`` with the frame's own real-world
    value mapping (when present and ``use_rwv``) or modality rescale (see :func:`value_mapping`).

    Native little-endian pixels are read straight from the file at the offset recorded by the
    scan; other transfer syntaxes (JPEG lossless, JPEG-LS, RLE, big endian, deflate) go through
    pydicom's decoders. ``out`` may be a preallocated array of the right shape.
    """
    nk, nj, ni = geometry.shape
    if out is None:
        out = np.empty((nk, nj, ni), np.float32)
    cache: dict[Path, np.ndarray] = {}
    for k, f in enumerate(geometry.frames):
        raw = _read_frame(f, series, cache)
        slope, intercept = value_mapping(f, use_rwv)
        with np.errstate(over="ignore", invalid="ignore"):
            np.multiply(raw, np.float32(slope), out=out[k], casting="unsafe")
            if intercept:
                out[k] += np.float32(intercept)
        if not _always_finite(raw.dtype, slope, intercept) and not np.isfinite(out[k]).all():
            raise InputError(
                f.path,
                f"value mapping of {series} (slope {slope:g}, intercept {intercept:g}) gives "
                f"values outside the float32 range: corrupt rescale attributes",
            )
    return out


def _always_finite(dtype: np.dtype, slope: float, intercept: float) -> bool:
    """Whether every integer of ``dtype`` maps to a finite float32 (< 3.4e38, roundings aside)."""
    return dtype.kind in "iu" and 256.0**dtype.itemsize * abs(slope) + abs(intercept) < 3.4e38


def _read_frame(f: FrameRef, series: str, cache: dict[Path, np.ndarray]) -> np.ndarray:
    dtype = _native_dtype(f)
    n = f.rows * f.cols
    if f.pixel_offset is not None and dtype is not None:
        try:
            raw = np.fromfile(f.path, dtype=dtype, count=n, offset=f.pixel_offset)
        except OSError as err:
            raise InputError(f.path, f"cannot read pixel data ({err.strerror})") from None
        if raw.size != n:
            raise InputError(
                f.path, f"truncated pixel data in {series}: {raw.size} of {n} pixels present"
            )
        if f.pixel_representation == 0 and f.bits_stored < f.bits_allocated:
            raw = raw & np.asarray((1 << f.bits_stored) - 1, dtype)
        return raw.reshape(f.rows, f.cols)
    arr = cache.get(f.path)
    if arr is None:
        cache.clear()  # keep at most one decoded file in memory
        arr = _decode_file(f, series)
        cache[f.path] = arr
    if f.frame_index is not None and arr.ndim == 3:
        return arr[f.frame_index]
    return arr


def _decoder_installed(transfer_syntax: str) -> bool:
    """Whether pydicom has a decoder plugin for this transfer syntax (the base install decodes
    RLE and, through Pillow, JPEG 2000; JPEG lossless and JPEG-LS need the ``jpeg`` extra)."""
    from pydicom.pixels import get_decoder

    try:
        return bool(get_decoder(transfer_syntax).is_available)
    except NotImplementedError:  # pydicom has no decoder for it at all
        return True


def _decode_file(f: FrameRef, series: str) -> np.ndarray:
    import pydicom  # only for compressed or unusual pixel data: a plain study never needs it

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(f.path)
            arr = ds.pixel_array
    except Exception as err:  # decoders raise many types; all mean "cannot decode"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            syntax = getattr(pydicom.uid.UID(f.transfer_syntax), "name", f.transfer_syntax)
        text = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        if not _decoder_installed(f.transfer_syntax):
            text = f"no decoder installed for it: {install_hint('gdcm')}"
        raise InputError(
            f.path, f"cannot decode pixel data of {series} (transfer syntax {syntax}): {text}"
        ) from None
    expected = (f.n_frames_in_file, f.rows, f.cols) if f.n_frames_in_file > 1 else (f.rows, f.cols)
    if arr.shape != expected:
        raise InputError(f.path, f"decoded pixel array has shape {arr.shape}, expected {expected}")
    return arr
