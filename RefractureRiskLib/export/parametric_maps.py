"""Maps computed from echoes as DICOM Parametric Map series, for PACS (highdicom, extra
``export``).

One Parametric Map object (one series, one multi-frame file, float pixels) per map, each frame a
slice of the echoes' grid, on the echoes' frame of reference, referencing the source echo images
it was derived from (the first echo's magnitude or real images). Values are stored as computed:
a Real World Value Mapping with slope 1 names the quantity and its UCUM unit (PDFF "Fat fraction"
DCM 129100 in %, R2* DCM 126395 in /s, field map in Hz, water and fat in signal units "1").
Patient and study come from the source images; ``deidentify=True`` treats them as the SEG/SR
export does (:mod:`.dicom_export`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from RefractureRiskLib import __version__
from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.volume import LPS_TO_RAS, Volume
from RefractureRiskLib.export.dicom_export import MANUFACTURER, _save

#: Per map: (label, explanation, unit, quantity definition or None), in export order.
MAP_QUANTITIES: Mapping[str, tuple[str, str, object, object]] = {
    "pdff": ("PDFF", "proton density fat fraction", codes.UCUM.Percent, codes.DCM.FatFraction),
    "r2s": ("R2STAR", "transverse relaxation rate R2*", codes.UCUM.PerSecond, codes.DCM.R2Star),
    "water": ("WATER", "water signal of the fit", codes.UCUM.NoUnits, None),
    "fat": ("FAT", "fat signal of the fit", codes.UCUM.NoUnits, None),
    "fieldmap": ("B0MAP", "off-resonance (field map)", codes.UCUM.Hertz, None),
}
#: Series numbers: 9000 + the map's position (clear of the scanner's own series numbers).
SERIES_NUMBER_BASE = 9000


def _geometry(volume: Volume):
    """highdicom pixel measures, orientation and per-slice positions of ``volume`` (LPS)."""
    lps = LPS_TO_RAS @ volume.ijk_to_ras
    spacing = volume.spacing_mm  # (i, j, k)
    row_dir, col_dir = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]
    normal = np.cross(row_dir, col_dir)
    between = abs(float(lps[:3, 2] @ normal))
    measures = hd.PixelMeasuresSequence(
        pixel_spacing=[float(spacing[1]), float(spacing[0])],
        slice_thickness=between,
        spacing_between_slices=between,
    )
    orientation = hd.PlaneOrientationSequence("PATIENT", [*row_dir, *col_dir])
    positions = [
        hd.PlanePositionSequence("PATIENT", [float(x) for x in lps[:3, 3] + k * lps[:3, 2]])
        for k in range(volume.shape[0])
    ]
    return measures, orientation, positions


def _read_sources(files: Sequence[str | Path]) -> list[pydicom.Dataset]:
    if not files:
        raise InputError(
            "DICOM maps",
            "the echoes did not come from DICOM files: no source images to derive a DICOM "
            "series from (write NRRD instead)",
        )
    datasets = [pydicom.dcmread(str(f), stop_before_pixels=True) for f in files]
    for ds, f in zip(datasets, files, strict=True):
        for attr in ("PatientBirthDate", "PatientSex"):
            if attr not in ds:
                raise InputError(f, f"source image lacks {attr} (highdicom needs it)")
    return datasets


def parametric_map(
    name: str, volume: Volume, sources: Sequence[pydicom.Dataset], description: str
) -> pydicom.Dataset:
    """One Parametric Map object of map ``name`` (a key of :data:`MAP_QUANTITIES`)."""
    label, explanation, unit, quantity = MAP_QUANTITIES[name]
    values = np.nan_to_num(volume.array.astype(np.float32))
    lo, hi = float(values.min()), float(values.max())
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=label,
        lut_explanation=explanation,
        unit=unit,
        value_range=(lo, hi if hi > lo else lo + 1.0),
        slope=1.0,
        intercept=0.0,
        quantity_definition=quantity,
    )
    measures, orientation, positions = _geometry(volume)
    centre, width = (50.0, 100.0) if name == "pdff" else ((lo + hi) / 2, max(hi - lo, 1.0))
    pm = hd.pm.ParametricMap(
        source_images=sources,
        pixel_array=values,
        series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER_BASE + list(MAP_QUANTITIES).index(name) + 1,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="RefractureRisk fat-water separation",
        software_versions=__version__,
        device_serial_number="none",
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=centre, window_width=width)],
        content_label=label,
        content_description=description[:64],
        pixel_measures=measures,
        plane_orientation=orientation,
        plane_positions=positions,
    )
    # General Series: Laterality is type 2C and dciodvfy asks for it when no frame carries a
    # laterality; the spine is unpaired, so it is present and empty
    pm.Laterality = ""
    return pm


def export_parametric_maps(
    maps: Mapping[str, Volume],
    source_files: Sequence[str | Path],
    out_dir: str | Path,
    deidentify: bool = False,
    description: str = "computed from echoes by fat-water separation",
) -> dict[str, Path]:
    """Write ``<out_dir>/<name>.dcm`` for each map in ``maps`` that :data:`MAP_QUANTITIES`
    knows; returns the paths by map name. ``source_files``: the images the maps derive from,
    on the maps' grid (InputError when empty: .mat input has none)."""
    sources = _read_sources(source_files)
    written = {}
    for name in MAP_QUANTITIES:
        if name not in maps:
            continue
        if maps[name].shape[0] != len(sources) and len(sources) > 1:
            raise InputError(
                "DICOM maps", f"{maps[name].shape[0]} slices but {len(sources)} source images"
            )
        ds = parametric_map(name, maps[name], sources, description)
        written[name] = _save(ds, Path(out_dir) / f"{name}.dcm", deidentify)
    return written
