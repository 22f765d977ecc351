"""Which series of a study is loaded as each map: one PDFF series (the user names it when there
are several), then for every other kind the volume on the PDFF's frame of reference and grid.

Used by :mod:`.dicom_load`; a study that cannot be loaded (no PDFF, several, only localizers,
mixed patients) is an :class:`InputError` naming its series.
"""

from __future__ import annotations

import logging

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.io.dicom_series import SeriesInfo, StudyInfo

log = logging.getLogger(__name__)

#: Order in which maps are put into the Study (PDFF first: it defines the grid).
LOAD_ORDER = ("pdff", "r2s", "t2s", "water", "fat", "in_phase", "out_phase")


def check_one_patient(info: StudyInfo) -> None:
    """Refuse a study whose images belong to more than one patient, naming a few of them."""
    if info.n_patients <= 1:
        return
    by_key: dict[str, SeriesInfo] = {}
    for s in info.series:
        by_key.setdefault(s.header.patient_key, s)
    examples = list(by_key.values())[:3]
    listed = "; ".join(f"{s.label} (file {s.first_file.name})" for s in examples)
    raise InputError(
        f"study {info.study_uid}",
        f"mixed patients: images of {info.n_patients} different patients (PatientID/Name/"
        f"BirthDate differ) share this StudyInstanceUID, e.g. {listed}; separate the files",
    )


def alternatives_note(info: StudyInfo, chosen: SeriesInfo) -> str:
    """Why ``chosen`` was taken over the study's other series of its kind (for provenance)."""
    others = [s for s in info.series if s.kind == chosen.kind and s is not chosen]
    if not others:
        return ""
    listed = ", ".join(s.label for s in others)
    return (
        f"; chosen over {len(others)} other {chosen.kind} volume(s) ({listed}): same frame of "
        f"reference and grid as the PDFF preferred, then the highest series number"
    )


def _series_list(series: tuple[SeriesInfo, ...]) -> str:
    return "; ".join(f"{s.label}: {s.kind} ({s.reason})" for s in series)


def choose_series(
    info: StudyInfo, *, pdff_series: str | int | None = None
) -> dict[str, SeriesInfo]:
    """One series volume per map kind (PDFF first), or an InputError saying why not."""
    source = f"study {info.study_uid}"
    pdffs = [s for s in info.series if s.kind == "pdff"]
    if pdff_series is not None:
        key = str(pdff_series)
        pdffs = [s for s in pdffs if s.series_uid == key or str(s.header.series_number) == key]
        if not pdffs:
            raise InputError(source, f"no PDFF series matches {key!r}")
    if not pdffs:
        if info.series and all(s.kind == "localizer" for s in info.series):
            raise InputError(
                source,
                f"only localizer images found ({_series_list(info.series)}); export the "
                f"IDEAL-IQ / q-Dixon / mDIXON-Quant maps",
            )
        raise InputError(
            source,
            f"no PDFF (fat fraction) series among {len(info.series)} series volume(s): "
            f"{_series_list(info.series)}",
        )
    if len(pdffs) > 1:
        raise InputError(
            source,
            f"{len(pdffs)} PDFF series; choose one with pdff_series=<SeriesInstanceUID or "
            f"SeriesNumber>: " + "; ".join(f"{s.label} UID {s.series_uid}" for s in pdffs),
        )
    pdff = pdffs[0]
    if pdff.geometry is None:
        problem = str(pdff.geometry_problem)
        names_file = any(str(f.path) in problem for f in pdff.frames)
        source = pdff.label if names_file else f"{pdff.label} (e.g. {pdff.first_file})"
        raise InputError(source, problem)
    chosen = {"pdff": pdff}
    for kind in LOAD_ORDER[1:]:
        if kind == "t2s" and "r2s" in chosen:
            continue
        candidates = [s for s in info.series if s.kind == kind]
        usable = [s for s in candidates if s.geometry is not None]
        for s in candidates:
            if s.geometry is None:
                log.warning("%s not loaded: %s", s.label, s.geometry_problem)
        if not usable:
            continue
        # Prefer the same frame of reference and grid as the PDFF, then the latest series.
        usable.sort(
            key=lambda s: (
                s.header.frame_of_reference_uid == pdff.header.frame_of_reference_uid,
                s.geometry.shape == pdff.geometry.shape,  # type: ignore[union-attr]
                s.header.series_number or 0,
                s.part,
            )
        )
        chosen[kind] = usable[-1]
    return chosen
