"""``refracture-risk inspect FOLDER``: every series found, its kind, scaling, geometry and why.

Exit code 0 when the folder holds a usable PDFF map (it loads, with its unit decided), 1 when it
does not (the reason is printed), 2 for unusable arguments (e.g. a folder that does not exist).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from RefractureRiskLib.core.errors import InputError

if TYPE_CHECKING:
    from RefractureRiskLib.core.study import StudyProvenance

NAME = "inspect"
HELP = "list every DICOM series in a folder with its kind, scaling, geometry and why"

EXIT_NO_PDFF = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # here, not at module level: the top-level --help lists this command without loading numpy
    from RefractureRiskLib.io.dicom_units import PDFF_UNITS, R2S_UNITS

    parser.add_argument("folder", type=Path, help="folder with DICOM files (searched recursively)")
    parser.add_argument(
        "--study", default=None, help="study to check: index as listed, or StudyInstanceUID"
    )
    parser.add_argument(
        "--pdff-unit", choices=tuple(PDFF_UNITS), default=None, help="stored PDFF unit (override)"
    )
    parser.add_argument(
        "--r2s-unit", choices=R2S_UNITS, default=None, help="stored R2*/T2* unit (override)"
    )
    parser.add_argument(
        "--pdff-series", default=None, help="SeriesInstanceUID or SeriesNumber of the PDFF map"
    )


def run(args: argparse.Namespace) -> int:
    # Imported here: --help must not load pydicom and SimpleITK.
    from RefractureRiskLib.io.dicom_load import load_study_with_report
    from RefractureRiskLib.io.dicom_series import scan_dicom

    report = scan_dicom(args.folder)
    print(report.format_table())
    print()
    if not report.studies:
        print(f"No usable PDFF map: {report.why_no_images()}")
        return EXIT_NO_PDFF
    try:
        result = load_study_with_report(
            args.folder,
            study=args.study,
            pdff_unit=args.pdff_unit,
            r2s_unit=args.r2s_unit,
            pdff_series=args.pdff_series,
            report=report,
        )
    except InputError as err:
        print(f"No usable PDFF map: {err}")
        return EXIT_NO_PDFF
    study = result.study
    prov = study.provenance
    print(
        f"Usable PDFF map: {result.chosen['pdff'].label}; maps loaded: {', '.join(study.maps)} "
        f"on {study.grid.describe_geometry()}"
    )
    print(_acquisition_line(prov))
    for kind, sp in prov.series.items():
        flag = " [resampled]" if sp.resampled else ""
        print(f"  {kind}{flag}: {'; '.join(sp.scaling)}")
    return 0


def _acquisition_line(prov: StudyProvenance) -> str:
    """Vendor, field strength and echo times; says so where the headers lack them."""
    echoes = ", ".join(f"{t:g}" for t in prov.echo_times_ms)
    field = f"{prov.field_strength_t:g} T" if prov.field_strength_t else "not in the headers"
    model = f" {prov.manufacturer_model}" if prov.manufacturer_model else ""
    return (
        f"Vendor {prov.vendor}{model}, field strength {field}, "
        f"echo times {echoes + ' ms' if echoes else 'not in the headers'}"
    )
