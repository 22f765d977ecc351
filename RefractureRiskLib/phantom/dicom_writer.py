"""Write a synthetic :class:`Study` as vendor-styled MR DICOM (GE IDEAL-IQ, Siemens, Philips).

One series per map kind (or Philips W/F/FF mixed in one series), uint16 pixels with the vendor's
scalings (see :mod:`RefractureRiskLib.phantom.dicom_styles`), classic MR Image Storage or, for
Philips, Enhanced MR Image Storage with per-frame functional groups. Everything is deterministic
from ``seed``: UIDs, dates and patient ID are derived from it, so a study written twice is
identical. Patient attributes are obviously fake (``SYNTHETIC^PHANTOM``, ``SYN-<seed>``).

Geometry: ``Volume.ijk_to_ras`` is RAS; DICOM is LPS, ``lps = diag(-1, -1, 1) @ ras``. The i axis
(array columns) is the DICOM row direction, the j axis (array rows) the column direction, so
ImageOrientationPatient = (LPS direction of i, LPS direction of j), PixelSpacing = (spacing along
j, spacing along i) — row spacing first — and slice k is at ImagePositionPatient = LPS position of
voxel (0, 0, k). InstanceNumber (classic) and InStackPositionNumber (enhanced) increase with k.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from pydicom.uid import (
    EnhancedMRImageStorage,
    MRImageStorage,
)

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.study import MAP_KINDS, Study
from RefractureRiskLib.phantom.dicom_datasets import (
    DeterministicUids,
    SeriesPart,
    WriteContext,
    classic_slice,
    grid_geometry,
    part_echo_time_ms,
    study_echo_times_ms,
)
from RefractureRiskLib.phantom.dicom_enhanced import enhanced_file
from RefractureRiskLib.phantom.dicom_styles import (
    PDFF_STORAGES,
    PHILIPS_FRAME_TYPE,
    PHILIPS_PRIVATE_TYPE,
    StoredEncoding,
    VendorStyle,
    magnitude_encoding,
    pdff_encoding,
    r2s_encoding,
    vendor_style,
)

#: Kinds stored together when ``philips_mixed_series`` is set (Philips mDIXON Quant habit).
PHILIPS_MIXED_KINDS: tuple[str, ...] = ("water", "fat", "pdff")

_MAGNITUDE_KINDS = ("water", "fat", "in_phase", "out_phase")


@dataclass(frozen=True)
class WrittenSeries:
    """One written series (or, for a Philips mixed series, one kind's part of it).

    ``files``: classic — one file per slice in k order; enhanced — the one multi-frame file.
    ``frame_numbers``: enhanced — 1-based frame numbers of this kind in k order; classic — ().
    ``encoding``: how library values were stored (rescale, real-world value mapping).
    ``n_clipped``: voxels the vendor-like clipping changed (PDFF outside 0-100, T2* cap).
    """

    kind: str
    series_instance_uid: str
    series_number: int
    series_description: str
    image_type: tuple[str, ...]
    files: tuple[Path, ...]
    encoding: StoredEncoding
    sop_class_uid: str
    enhanced: bool = False
    mixed: bool = False
    frame_numbers: tuple[int, ...] = ()
    n_clipped: int = 0

    @property
    def rescale_slope(self) -> float:
        """RescaleSlope written for this kind."""
        return self.encoding.rescale_slope

    @property
    def rescale_intercept(self) -> float:
        """RescaleIntercept written for this kind."""
        return self.encoding.rescale_intercept


@dataclass(frozen=True)
class WrittenStudy:
    """What :func:`write_dicom_study` wrote: shared UIDs and one entry per series (part)."""

    out_dir: Path
    vendor: str
    study_instance_uid: str
    frame_of_reference_uid: str
    patient_id: str
    series: tuple[WrittenSeries, ...] = field(default=())

    def by_kind(self, kind: str) -> WrittenSeries:
        """The series (part) holding ``kind``; KeyError when not written."""
        for s in self.series:
            if s.kind == kind:
                return s
        raise KeyError(f"no series of kind {kind!r} written (have {[s.kind for s in self.series]})")

    def summary_rows(self) -> list[dict[str, object]]:
        """One plain dict per series (part) for printing a table (no pandas needed)."""
        rows: list[dict[str, object]] = []
        for s in self.series:
            enc = s.encoding
            rows.append(
                {
                    "series_number": s.series_number,
                    "kind": s.kind,
                    "series_description": s.series_description,
                    "image_type": "\\".join(s.image_type),
                    "n_files": len(s.files),
                    "n_frames": len(s.frame_numbers) or len(s.files),
                    "enhanced": s.enhanced,
                    "mixed": s.mixed,
                    "stored_meaning": enc.meaning,
                    "rescale_slope": enc.rescale_slope,
                    "rescale_intercept": enc.rescale_intercept,
                    "rwvm_units": enc.rwvm_units or "",
                    "n_clipped": s.n_clipped,
                }
            )
        return rows

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file written, without duplicates, in writing order."""
        seen: dict[Path, None] = {}
        for s in self.series:
            for f in s.files:
                seen.setdefault(f, None)
        return tuple(seen)


# ---------------------------------------------------------------------------------------------
# Public entry point


def _parts(
    study: Study,
    style: VendorStyle,
    kinds: Sequence[str],
    pdff_storage: str,
    r2s_as_t2star: bool,
    field_t: float,
    echo_times: tuple[float, ...],
) -> list[SeriesPart]:
    parts = []
    for kind in kinds:
        values = np.asarray(study.maps[kind].array, dtype=np.float64)
        if kind == "pdff":
            enc = pdff_encoding(style.name, pdff_storage)
        elif kind == "r2s":
            enc = r2s_encoding(style.name, r2s_as_t2star)
        else:
            enc = magnitude_encoding(values, style.name)
        try:
            stored, n_clipped = enc.to_stored(values)
        except ValueError as err:
            raise InputError(f"study map {kind!r}", str(err)) from None
        label = "t2s" if kind == "r2s" and r2s_as_t2star else kind
        parts.append(
            SeriesPart(
                kind=kind,
                stored=stored,
                encoding=enc,
                image_type=style.image_type[label],
                frame_type=PHILIPS_FRAME_TYPE.get(label, style.image_type[label]),
                private_type=PHILIPS_PRIVATE_TYPE.get(label, label.upper()),
                description=style.series_description[label],
                echo_time_ms=part_echo_time_ms(kind, field_t, echo_times),
                n_clipped=n_clipped,
            )
        )
    return parts


def write_dicom_study(
    study: Study,
    out_dir: Path,
    *,
    vendor: str = "GE",
    pdff_storage: str = "default",
    philips_enhanced: bool = False,
    philips_mixed_series: bool = False,
    r2s_as_t2star: bool = False,
    kinds: Sequence[str] | None = None,
    seed: int = 0,
) -> WrittenStudy:
    """Write ``study``'s maps as vendor-styled MR DICOM series under ``out_dir``.

    Args:
        study: maps on one grid (PDFF in %, R2* in 1/s, magnitudes in a.u.).
        out_dir: new or empty folder (InputError otherwise); series go to
            ``S<series number>/`` with neutral file names (loaders must classify by ImageType
            and SeriesDescription, not by path).
        vendor: "GE" (IDEAL-IQ), "Siemens" (q-Dixon) or "Philips" (mDIXON Quant).
        pdff_storage: "default" (vendor's usual: GE "percent_rescaled", Siemens "permille",
            Philips "rwvm") or one of ``PDFF_STORAGES``; see :mod:`.dicom_styles`.
        philips_enhanced: Philips only — one Enhanced MR Image Storage file per series.
        philips_mixed_series: Philips only — water, fat and PDFF in ONE series (classic:
            images told apart by ImageType; enhanced: frames by FrameType and StackID).
        r2s_as_t2star: Philips only — store T2* in ms (T2* = 1000 / R2*) instead of R2*.
        kinds: map kinds to write (default: every kind of ``MAP_KINDS`` the study has).
        seed: makes UIDs, dates and the patient ID deterministic.

    Returns:
        A :class:`WrittenStudy` listing every series with its UIDs, files and value encoding.
    """
    style = vendor_style(vendor)
    kinds = _checked_options(
        study, style, kinds, pdff_storage, philips_enhanced, philips_mixed_series, r2s_as_t2star
    )

    options = (pdff_storage, philips_enhanced, philips_mixed_series, r2s_as_t2star)
    ctx = _context(study, style, seed, options)
    field_t, echo_times = ctx.field_strength_t, ctx.echo_times_ms
    parts = _parts(study, style, kinds, pdff_storage, r2s_as_t2star, field_t, echo_times)

    groups = _series_groups(parts, philips_mixed_series)
    out_dir = _new_folder(Path(out_dir))
    written: list[WrittenSeries] = []
    for index, group in enumerate(groups):
        number = (index + 1) * 100 + 1 if style.name == "Philips" else index + 3
        written += _write_series(ctx, group, number, out_dir / f"S{number:04d}", philips_enhanced)
    return WrittenStudy(
        out_dir=out_dir,
        vendor=style.name,
        study_instance_uid=ctx.uids("study"),
        frame_of_reference_uid=ctx.uids("frame_of_reference"),
        patient_id=f"SYN-{seed}",
        series=tuple(written),
    )


def _series_groups(parts: list[SeriesPart], philips_mixed_series: bool) -> list[list[SeriesPart]]:
    """The maps of each series: one map per series, or Philips' water, fat and PDFF together."""
    if not philips_mixed_series:
        return [[p] for p in parts]
    mixed = [p for p in parts if p.kind in PHILIPS_MIXED_KINDS]
    return ([mixed] if mixed else []) + [[p] for p in parts if p not in mixed]


def _new_folder(out_dir: Path) -> Path:
    """``out_dir``, refused when it exists and is not an empty folder."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        # Stale files from an earlier study would be read as part of this one.
        raise InputError(out_dir, "output folder exists and is not empty; give a new folder")
    return out_dir


def _context(study: Study, style: VendorStyle, seed: int, options: tuple) -> WriteContext:
    """What every dataset of the study shares; UIDs, dates and times follow from ``seed``."""
    field_t = study.provenance.field_strength_t or 1.5
    echo_times = study_echo_times_ms(study, field_t)
    study_day = dt.date(2025, 1, 6) + dt.timedelta(days=seed % 365)
    return WriteContext(
        style=style,
        study=study,
        uids=DeterministicUids("refracture-risk-phantom", seed, style.name, *options),
        seed=seed,
        geometry=grid_geometry(study.grid),
        study_date=study_day.strftime("%Y%m%d"),
        study_time=f"{9 + seed % 8:02d}{seed % 60:02d}00",
        field_strength_t=field_t,
        echo_times_ms=echo_times,
        repetition_time_ms=round(echo_times[-1] + 2.5, 3),
    )


def _checked_options(
    study: Study,
    style: VendorStyle,
    kinds: Sequence[str] | None,
    pdff_storage: str,
    philips_enhanced: bool,
    philips_mixed_series: bool,
    r2s_as_t2star: bool,
) -> Sequence[str]:
    """The kinds to write; InputError for an option the vendor or the study cannot take."""
    if pdff_storage != "default" and pdff_storage not in PDFF_STORAGES:
        raise InputError("pdff_storage", f"{pdff_storage!r}; expected 'default' or {PDFF_STORAGES}")
    philips_only = {
        "philips_enhanced": philips_enhanced,
        "philips_mixed_series": philips_mixed_series,
        "r2s_as_t2star": r2s_as_t2star,
    }
    for name, flag in philips_only.items():
        if flag and style.name != "Philips":
            raise InputError(name, f"is a Philips option; vendor is {style.name}")
    if pdff_storage == "rwvm" and style.name != "Philips":
        raise InputError("pdff_storage", "'rwvm' is the Philips style; use vendor='Philips'")
    if kinds is None:
        kinds = [k for k in MAP_KINDS if k in study.maps]
    missing = [k for k in kinds if k not in study.maps]
    unknown = [k for k in kinds if k not in MAP_KINDS]
    if missing or unknown:
        raise InputError(
            "kinds", f"cannot write {missing or unknown}; study has {list(study.maps)}"
        )
    if not kinds:
        raise InputError("kinds", "no map kinds to write")

    return kinds


def _write_series(
    ctx: WriteContext, group: list[SeriesPart], number: int, folder: Path, enhanced: bool
) -> list[WrittenSeries]:
    """One series (one part, or a Philips mixed group) into ``folder``: one enhanced file or
    one classic file per slice."""
    style = ctx.style
    is_mixed = len(group) > 1
    desc = style.series_description["mixed"] if is_mixed else group[0].description
    series_uid = ctx.uids("series", number, *(p.kind for p in group))
    folder.mkdir(parents=True, exist_ok=True)
    written: list[WrittenSeries] = []
    if enhanced:
        ds, frame_numbers = enhanced_file(ctx, group, series_uid, number, desc)
        path = folder / "I0001.dcm"
        ds.save_as(path, enforce_file_format=True)
        for part, numbers in zip(group, frame_numbers, strict=True):
            series = _written(part, series_uid, number, desc, (path,), EnhancedMRImageStorage)
            written.append(_with_frames(series, numbers, is_mixed))
        return written
    instance = 0
    for part in group:
        paths = []
        for k in range(part.stored.shape[0]):
            instance += 1
            ds = classic_slice(ctx, part, k, instance, series_uid, number, desc)
            path = folder / f"I{instance:04d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        written.append(
            _written(part, series_uid, number, desc, tuple(paths), MRImageStorage, is_mixed)
        )
    return written


def _written(
    part: SeriesPart,
    series_uid: str,
    number: int,
    desc: str,
    files: tuple[Path, ...],
    sop_class: str,
    mixed: bool = False,
) -> WrittenSeries:
    return WrittenSeries(
        kind=part.kind,
        series_instance_uid=series_uid,
        series_number=number,
        series_description=desc,
        image_type=part.frame_type if sop_class == EnhancedMRImageStorage else part.image_type,
        files=files,
        encoding=part.encoding,
        sop_class_uid=str(sop_class),
        enhanced=sop_class == EnhancedMRImageStorage,
        mixed=mixed,
        n_clipped=part.n_clipped,
    )


def _with_frames(series: WrittenSeries, numbers: tuple[int, ...], mixed: bool) -> WrittenSeries:
    return replace(series, frame_numbers=numbers, mixed=mixed)
