"""An echo study as the :class:`Study` the pipeline takes: maps computed from the echoes first.

``refracture-risk analyze`` on raw multi-echo data (an imDataParams ``.mat`` file, or a DICOM
folder with ``--echoes``) runs :func:`echo_study`, then the usual pipeline on its result. The
study holds PDFF (%), R2* (1/s), water and fat on the echoes' grid; its provenance says that the
maps were computed here, not by the scanner: for every map, ``classified_by`` names the
separation and ``scaling`` lists the method, fat spectrum, echo times and field strength (the
results file's provenance carries both, see ``pipeline.provenance_record``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from RefractureRiskLib.core.echoes import EchoSet
from RefractureRiskLib.core.study import SeriesProvenance, Study, StudyProvenance, nominal_field_t
from RefractureRiskLib.maps.fatwater.compute import compute_maps, load_echoes
from RefractureRiskLib.maps.fatwater.separate import FatWaterResult
from RefractureRiskLib.maps.fatwater.spectrum import DEFAULT_SPECTRUM, FatSpectrum

#: Maps of the separation the study carries (the pipeline's map kinds).
STUDY_MAPS = ("pdff", "r2s", "water", "fat")

#: ``classified_by`` of every computed map.
COMPUTED_FROM_ECHOES = "computed from the echoes by RefractureRisk fat-water separation"


def separation_facts(result: FatWaterResult) -> tuple[str, ...]:
    """One line each: method, fat spectrum, echoes, field strength, PDFF definition."""
    prov = result.provenance
    te = ", ".join(f"{t:g}" for t in prov["echo_times_ms"])  # type: ignore[union-attr]
    shifts = ", ".join(f"{s:g}" for s in prov["fat_shifts_ppm"])  # type: ignore[union-attr]
    return (
        f"method: {prov['method']}",
        f"fat spectrum: {prov['fat_spectrum']} (peaks {shifts} ppm; "
        f"{prov['fat_spectrum_reference']})",
        f"echoes: {len(prov['echo_times_ms'])} at TE {te} ms",  # type: ignore[arg-type]
        f"field strength: {prov['field_strength_t']:g} T",
        f"PDFF: {prov['pdff']}",
        f"source: {prov['source']}",
    )


def study_from_separation(result: FatWaterResult, echoes: EchoSet) -> Study:
    """The :class:`Study` of a separation's maps, with provenance saying how they were made."""
    facts = separation_facts(result)
    series = {
        kind: SeriesProvenance(
            kind=kind,
            source=echoes.source,
            classified_by=COMPUTED_FROM_ECHOES,
            scaling=facts,
        )
        for kind in STUDY_MAPS
    }
    vendor = str(echoes.provenance.get("vendor") or "unknown")
    provenance = StudyProvenance(
        vendor=vendor,
        field_strength_t=nominal_field_t(echoes.field_strength_t),
        echo_times_ms=tuple(round(t * 1e3, 4) for t in echoes.te_s),
        series=series,
    )
    return Study({kind: getattr(result, kind) for kind in STUDY_MAPS}, provenance)


def echo_study(
    source: EchoSet | str | Path,
    spectrum: FatSpectrum | str = DEFAULT_SPECTRUM,
    precession: str = "auto",
    progress: Callable[[str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[Study, FatWaterResult]:
    """Read (unless given an :class:`EchoSet`) and separate an echo study; the :class:`Study`
    for the pipeline and the full separation result (field map, residual, provenance)."""
    if isinstance(source, EchoSet):
        echoes = source
    else:
        if progress:
            progress(f"reading echoes from {source}")
        echoes = load_echoes(source, precession)
    result = compute_maps(echoes, spectrum, precession, progress, cancelled)
    return study_from_separation(result, echoes), result
