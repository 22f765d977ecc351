"""``load_study``: a folder of DICOM files -> a :class:`Study` on the PDFF grid, or a precise error.

Steps: scan headers (as :func:`.dicom_series.scan_dicom`), pick the study, pick one series
volume per map kind, read and rescale only those pixels, convert units (PDFF -> percent, T2* ->
R2* in 1/s), resample any map not on the PDFF grid onto it (SimpleITK, linear, NaN outside) and
record every step in provenance; ``progress`` hears the files scanned and the series read.
Nothing is guessed: ambiguous units, several PDFF series, mixed patients and broken
stacks are :class:`InputError` naming the series or file and the reason.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.study import SeriesProvenance, Study, StudyProvenance
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.io.dicom_choose import alternatives_note, check_one_patient, choose_series
from RefractureRiskLib.io.dicom_classify import kind_text
from RefractureRiskLib.io.dicom_scan import scan_files
from RefractureRiskLib.io.dicom_series import ScanReport, SeriesInfo, StudyInfo, build_report
from RefractureRiskLib.io.dicom_units import (
    PDFF_UNITS,
    R2S_UNITS,
    detect_pdff_unit,
    pdff_to_percent,
    r2s_unit_from_header,
    robust_range,
    to_r2s_per_s,
    unit_from_header,
)
from RefractureRiskLib.io.dicom_volume import read_stack, value_mapping
from RefractureRiskLib.io.images import sitk_to_volume, volume_to_sitk

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class LoadResult:
    """A loaded study with the scan report it came from (for ``inspect`` and for logs)."""

    study: Study
    report: ScanReport
    chosen: Mapping[str, SeriesInfo]


def load_study(
    path: str | Path,
    *,
    study: int | str | None = None,
    pdff_unit: str | None = None,
    r2s_unit: str | None = None,
    pdff_series: str | int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Study:
    """Load the fat-water maps of one study under ``path`` into a :class:`Study`.

    Args:
        path: a folder (scanned recursively) or a single DICOM file.
        study: which study when the folder holds several: index (as listed by ``inspect``) or
            StudyInstanceUID. Required when there are several.
        pdff_unit: explicit stored PDFF unit ("fraction", "percent", "permille"); overrides
            detection (use when detection reports an ambiguous range).
        r2s_unit: explicit stored R2*/T2* unit ("per_s", "per_ms", "t2star_ms", "t2star_s").
        pdff_series: SeriesInstanceUID or SeriesNumber of the PDFF series when there are several.
        progress: ``progress(message)``, the library's convention: "scanned k of n files"
            about every fiftieth of the files (:func:`.dicom_scan.scan_files`), then "read k of
            n series (kind: series)" after each map's series is read.

    Returns:
        The Study: PDFF in percent, R2* in 1/s, all maps on the PDFF grid; provenance has the
        vendor, model, field strength, echo times, UIDs and, per map, why the series was taken
        and every value conversion.
    """
    return load_study_with_report(
        path,
        study=study,
        pdff_unit=pdff_unit,
        r2s_unit=r2s_unit,
        pdff_series=pdff_series,
        progress=progress,
    ).study


def load_study_with_report(
    path: str | Path,
    *,
    study: int | str | None = None,
    pdff_unit: str | None = None,
    r2s_unit: str | None = None,
    pdff_series: str | int | None = None,
    report: ScanReport | None = None,
    progress: Callable[[str], None] | None = None,
) -> LoadResult:
    """:func:`load_study` that also returns the scan report and the chosen series; ``report``:
    a scan of ``path`` already made (``progress`` then hears only the series read).

    Warnings of third-party libraries (pydicom on odd values, numpy, SimpleITK) are captured and
    logged (``-v`` shows them), never printed beside the project's own one-line error: every
    problem they could signal is checked here and reported as an :class:`InputError`.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return _load_study_with_report(
                path,
                study=study,
                pdff_unit=pdff_unit,
                r2s_unit=r2s_unit,
                pdff_series=pdff_series,
                report=report,
                progress=progress or (lambda _msg: None),
            )
        finally:
            for w in caught:
                log.info("library warning while loading %s: %s", path, w.message)


def _load_study_with_report(
    path: str | Path,
    *,
    study: int | str | None,
    pdff_unit: str | None,
    r2s_unit: str | None,
    pdff_series: str | int | None,
    report: ScanReport | None,
    progress: Callable[[str], None],
) -> LoadResult:
    if pdff_unit is not None and pdff_unit not in PDFF_UNITS:
        raise InputError("pdff_unit", f"{pdff_unit!r}; expected one of {tuple(PDFF_UNITS)}")
    if r2s_unit is not None and r2s_unit not in R2S_UNITS:
        raise InputError("r2s_unit", f"{r2s_unit!r}; expected one of {R2S_UNITS}")
    report = report if report is not None else build_report(scan_files(path, progress))
    info = report.select(study)
    check_one_patient(info)
    chosen = _choose(report, info, pdff_series)
    maps: dict[str, Volume] = {}
    series_prov: dict[str, SeriesProvenance] = {}
    for n, (kind, s) in enumerate(chosen.items(), 1):
        volume, steps = _read_map(kind, s, pdff_unit, r2s_unit)
        progress(f"read {n} of {len(chosen)} series ({kind_text(kind)}: {s.label})")
        resampled = False
        if maps and not volume.same_grid(maps["pdff"]):
            volume = _onto_pdff_grid(volume, maps["pdff"], s, chosen["pdff"], steps)
            resampled = True
        out_kind = "r2s" if kind == "t2s" else kind
        maps[out_kind] = volume
        series_prov[out_kind] = SeriesProvenance(
            kind=out_kind,
            series_uid=s.series_uid,
            series_description=s.header.series_description,
            source=f"{s.label} ({s.n_files} file(s) in {s.first_file.parent})",
            classified_by=s.reason + alternatives_note(info, s),
            scaling=tuple(steps),
            resampled=resampled,
        )
    provenance = _study_provenance(info, chosen["pdff"], series_prov)
    log.info(
        "loaded study with maps %s (vendor %s, %s T)",
        ", ".join(maps),
        provenance.vendor,
        provenance.field_strength_t,
    )
    return LoadResult(Study(maps, provenance, info.patient), report, chosen)


def _choose(
    report: ScanReport, info: StudyInfo, pdff_series: str | int | None
) -> dict[str, SeriesInfo]:
    """:func:`choose_series`; a refusal mentions the files the scan skipped, which may be why."""
    try:
        return choose_series(info, pdff_series=pdff_series)
    except InputError as err:
        if not report.skipped:
            raise
        first = report.skipped[0]
        raise InputError(
            err.source,
            f"{err.reason}; note: {len(report.skipped)} file(s) in the folder were skipped, "
            f"e.g. {first.path.name}: {first.reason}",
        ) from None


def _read_map(
    kind: str, s: SeriesInfo, pdff_unit: str | None, r2s_unit: str | None
) -> tuple[Volume, list[str]]:
    """One chosen series as a Volume in the library's units, with the scaling steps applied."""
    assert s.geometry is not None  # choose_series only returns stacks
    values = read_stack(s.geometry, s.label)
    steps = [_mapping_text(s)]
    if kind == "pdff":
        values, text = _convert_pdff(values, s, pdff_unit)
        steps.extend(text)
    elif kind in ("r2s", "t2s"):
        values, text = _convert_r2s(values, s, kind, r2s_unit)
        steps.extend(text)
    try:
        return Volume(values, s.geometry.ijk_to_ras), steps
    except ValueError as err:  # e.g. a singular IJK-to-RAS from degenerate geometry tags
        raise InputError(
            f"{s.label} ({s.first_file})",
            f"cannot place the images ({err}); check PixelSpacing, ImageOrientationPatient "
            "and ImagePositionPatient",
        ) from None


def _onto_pdff_grid(
    volume: Volume, pdff: Volume, s: SeriesInfo, pdff_info: SeriesInfo, steps: list[str]
) -> Volume:
    """``volume`` resampled onto the PDFF grid, the step (and a differing frame of reference)
    added to ``steps``."""
    steps.append(
        f"resampled (linear, NaN outside) from {volume.describe_geometry()} onto the PDFF grid"
    )
    if s.header.frame_of_reference_uid != pdff_info.header.frame_of_reference_uid:
        steps.append("warning: FrameOfReferenceUID differs from the PDFF series")
    return resample_onto(volume, pdff)


def _study_provenance(
    info: StudyInfo, pdff_info: SeriesInfo, series: dict[str, SeriesProvenance]
) -> StudyProvenance:
    header = pdff_info.header
    echo_times = sorted(
        {te for s in info.series if s.classification.is_fat_water_map for te in s.echo_times_ms}
    )
    return StudyProvenance(
        vendor=vendor_name(header.manufacturer),
        manufacturer_model=header.model or None,
        field_strength_t=header.field_strength_t,
        echo_times_ms=tuple(echo_times),
        study_uid=info.study_uid,
        frame_of_reference_uid=header.frame_of_reference_uid,
        series=series,
    )


def vendor_name(manufacturer: str) -> str:
    """Short vendor name from the Manufacturer attribute ("GE", "Siemens", "Philips" or as is)."""
    m = manufacturer.upper()
    if m.startswith("GE"):
        return "GE"
    if "SIEMENS" in m:
        return "Siemens"
    if "PHILIPS" in m:
        return "Philips"
    return manufacturer or "unknown"


# -- values ---------------------------------------------------------------------------------------


def _mapping_text(s: SeriesInfo) -> str:
    pairs = sorted({value_mapping(f) for f in s.frames})
    used_rwv = any(f.rwv is not None for f in s.frames)
    what = "real-world value mapping" if used_rwv else "modality rescale"
    if len(pairs) == 1:
        slope, intercept = pairs[0]
        if (slope, intercept) == (1.0, 0.0):
            return f"{what}: none (slope 1, intercept 0)"
        return f"{what}: value = stored x {slope:g} {intercept:+g}"
    return f"{what}: per frame ({len(pairs)} different slope/intercept pairs)"


def _header_units(s: SeriesInfo) -> tuple[str | None, str | None]:
    codes = {f.rwv[2] for f in s.frames if f.rwv is not None and f.rwv[2]}
    rtypes = {f.rescale_type for f in s.frames if f.rescale_type}
    code = codes.pop() if len(codes) == 1 else None
    rtype = rtypes.pop() if len(rtypes) == 1 else None
    return code, rtype


def _convert_pdff(values: np.ndarray, s: SeriesInfo, pdff_unit: str | None):
    steps = []
    if pdff_unit is not None:
        unit = pdff_unit
        steps.append(f"PDFF unit {unit} given explicitly by the user")
    else:
        code, rtype = _header_units(s)
        if any(f.rwv is not None for f in s.frames):
            # The real-world value mapping was applied: only its unit describes the values.
            header_unit, evidence = unit_from_header(code), f"real-world value unit {code!r}"
        else:
            header_unit, evidence = unit_from_header(None, rtype), f"RescaleType {rtype!r}"
        decision = detect_pdff_unit(
            values, header_unit=header_unit, header_evidence=evidence, source=s.label
        )
        unit = decision.unit
        steps.append(decision.reason)
    values, text = pdff_to_percent(values, unit, source=s.label)
    steps.append(text)
    return values, steps


def _convert_r2s(values: np.ndarray, s: SeriesInfo, kind: str, r2s_unit: str | None):
    steps = []
    code, _ = _header_units(s)
    unit = r2s_unit
    if unit is not None:
        steps.append(f"R2*/T2* unit {unit} given explicitly by the user")
    else:
        header = r2s_unit_from_header(code)
        if header is not None:
            if (kind == "t2s") != header.startswith("t2star"):
                raise InputError(
                    s.label,
                    f"classified as {kind_text(kind)} but its real-world unit is {code!r}; "
                    f"pass r2s_unit explicitly",
                )
            unit = header
            steps.append(f"unit {unit} from real-world value unit {code!r}")
        else:
            _, hi, _ = robust_range(values)
            if kind == "t2s":
                if not hi > 2.0:
                    raise InputError(
                        s.label,
                        f"ambiguous T2* unit: values up to {hi:.4g} without a header unit "
                        f"(ms or s?); pass r2s_unit='t2star_ms' or 't2star_s'",
                    )
                unit = "t2star_ms"
                steps.append(f"T2* taken as ms: no header unit, values up to {hi:.4g}")
            else:
                if not hi > 2.0:
                    raise InputError(
                        s.label,
                        f"ambiguous R2* unit: values up to {hi:.4g} without a header unit "
                        f"(1/s or 1/ms?); pass r2s_unit='per_s' or 'per_ms'",
                    )
                unit = "per_s"
                steps.append(f"R2* taken as 1/s: no header unit, values up to {hi:.4g}")
    values, text = to_r2s_per_s(values, unit, source=s.label)
    steps.append(text)
    return values, steps


def resample_onto(volume: Volume, reference: Volume) -> Volume:
    """``volume`` resampled onto ``reference``'s grid (linear; NaN outside ``volume``)."""
    import SimpleITK as sitk  # only for maps on another grid (loaded then, not on import)

    image = volume_to_sitk(volume.with_array(np.asarray(volume.array, np.float32)))
    ref = volume_to_sitk(reference.with_array(np.zeros(reference.shape, np.float32)))
    out = sitk.Resample(image, ref, sitk.Transform(), sitk.sitkLinear, float("nan"))
    return Volume(sitk_to_volume(out).array, reference.ijk_to_ras)
