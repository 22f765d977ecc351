"""Grouping scanned frames into studies and series, splitting mixed series, and the scan report.

A DICOM series may hold several volumes: Philips puts water, fat and fat fraction in one series
(split by ImageType/FrameType), Siemens stores both echoes of a field map in one series (split by
EchoNumbers/EchoTime), and GE stores the Hz map and the magnitude at identical positions (split
into InstanceNumber blocks). Each resulting volume is a :class:`SeriesInfo`: recognised or not,
it is listed with its kind and the reason, never dropped silently.
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.study import PatientInfo
from RefractureRiskLib.io.dicom_classify import Classification, classify_image, kind_text
from RefractureRiskLib.io.dicom_scan import (
    FolderScan,
    FrameRef,
    ScannedFile,
    SeriesHeader,
    SkippedFile,
    scan_files,
)
from RefractureRiskLib.io.dicom_volume import StackGeometry, plan_stack, value_mapping

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class SeriesInfo:
    """One volume candidate: a series, or one part of a series that mixes kinds or volumes.

    ``geometry`` is the checked slice stack (header only, no pixels read) or None with
    ``geometry_problem`` saying why the images do not form one regular stack.
    """

    header: SeriesHeader
    part: str
    classification: Classification
    frames: tuple[FrameRef, ...]
    geometry: StackGeometry | None
    geometry_problem: str | None

    @property
    def kind(self) -> str:
        """Classified kind (see :mod:`RefractureRiskLib.io.dicom_classify`)."""
        return self.classification.kind

    @property
    def reason(self) -> str:
        """Why it was classified so."""
        return self.classification.reason

    @property
    def series_uid(self) -> str:
        return self.header.series_uid

    @property
    def label(self) -> str:
        """Short name for messages: number, description and part (never patient data)."""
        number = self.header.series_number
        text = f"series {number if number is not None else '?'} {self.header.series_description!r}"
        return f"{text} [{self.part}]" if self.part else text

    @property
    def n_files(self) -> int:
        return len({f.path for f in self.frames})

    @property
    def first_file(self) -> Path:
        return self.frames[0].path

    @property
    def echo_times_ms(self) -> tuple[float, ...]:
        return tuple(sorted({f.echo_time_ms for f in self.frames if f.echo_time_ms is not None}))

    @property
    def scaling(self) -> str:
        """The stored-to-value mapping that loading applies: the real-world value mapping when
        present (with its unit), else the modality rescale; per frame when frames differ."""
        pairs = sorted({value_mapping(f) for f in self.frames})
        what = "RWV" if any(f.rwv is not None for f in self.frames) else "rescale"
        if len(pairs) == 1:
            s, b = pairs[0]
            text = "none" if (s, b) == (1.0, 0.0) else f"{what} x{s:g} {b:+g}"
        else:
            text = f"{what} per frame ({len(pairs)} slope/intercept pairs)"
        units = {f.rwv[2] or f.rwv[3] for f in self.frames if f.rwv and (f.rwv[2] or f.rwv[3])}
        if units:
            text += f" [{', '.join(sorted(units))}]"
        return text

    @property
    def geometry_text(self) -> str:
        return (
            self.geometry.describe() if self.geometry else f"NOT A STACK: {self.geometry_problem}"
        )


@dataclass(frozen=True, eq=False)
class StudyInfo:
    """One study (StudyInstanceUID) in the folder and every series volume found in it."""

    study_uid: str
    description: str
    series: tuple[SeriesInfo, ...]
    n_patients: int
    patient: PatientInfo

    @property
    def vendor(self) -> str:
        return next((s.header.manufacturer for s in self.series if s.header.manufacturer), "")

    def summary(self) -> str:
        kinds = sorted({s.kind for s in self.series})
        return (
            f"StudyInstanceUID {self.study_uid} ({self.description or 'no description'}; "
            f"{len(self.series)} series volume(s): {', '.join(kinds)})"
        )


@dataclass(frozen=True, eq=False)
class ScanReport:
    """Everything found under a folder: studies with their series, and skipped files."""

    root: Path
    studies: tuple[StudyInfo, ...]
    skipped: tuple[SkippedFile, ...]
    n_files_seen: int
    notes: tuple[str, ...] = field(default=())

    def select(self, study: int | str | None = None) -> StudyInfo:
        """The study to load: by index or StudyInstanceUID; None only when there is exactly one."""
        if not self.studies:
            raise InputError(self.root, self.why_no_images())
        if study is None:
            if len(self.studies) == 1:
                return self.studies[0]
            if not any(x.kind == "pdff" for st in self.studies for x in st.series):
                # Choosing one would only lead to "no PDFF": say so at once.
                raise InputError(
                    self.root,
                    f"none of the {len(self.studies)} studies in this folder has a PDFF (fat "
                    "fraction) series: "
                    + "; ".join(f"[{i}] {s.summary()}" for i, s in enumerate(self.studies)),
                )
            raise InputError(
                self.root,
                f"{len(self.studies)} studies in this folder; choose one by index or "
                f"StudyInstanceUID: "
                + "; ".join(f"[{i}] {s.summary()}" for i, s in enumerate(self.studies)),
            )
        if isinstance(study, int) or (
            isinstance(study, str) and study.isdigit() and len(study) < 4
        ):
            index = int(study)
            if not 0 <= index < len(self.studies):
                raise InputError(
                    self.root, f"study index {index} out of range 0..{len(self.studies) - 1}"
                )
            return self.studies[index]
        for s in self.studies:
            if s.study_uid == study:
                return s
        raise InputError(
            self.root,
            f"no study with StudyInstanceUID {study}; found: "
            + "; ".join(f"[{i}] {s.study_uid}" for i, s in enumerate(self.studies)),
        )

    def why_no_images(self) -> str:
        """Message for a folder with no usable DICOM image."""
        if self.n_files_seen == 0:
            return "folder is empty (no files found, also in subfolders)"
        examples = "; ".join(f"{s.path.name}: {s.reason}" for s in self.skipped[:5])
        more = f" (and {len(self.skipped) - 5} more)" if len(self.skipped) > 5 else ""
        return f"no readable DICOM image among {self.n_files_seen} file(s): {examples}{more}"

    def format_table(self) -> str:
        """Plain-text table of every series volume, then the skipped files."""
        lines = [f"Folder: {self.root}  ({self.n_files_seen} files)"]
        for i, st in enumerate(self.studies):
            lines.append("")
            lines.append(f"Study [{i}] {st.study_uid}  {st.description!r}  vendor {st.vendor!r}")
            if st.n_patients > 1:
                lines.append(f"  WARNING: {st.n_patients} different patients in this study")
            header = f"  {'#':>4} {'kind':<10} {'images':>6}  {'geometry':<38} {'scaling':<22} why"
            lines.append(header)
            for s in st.series:
                number = s.header.series_number if s.header.series_number is not None else "?"
                name = f"{s.header.series_description}" + (f" [{s.part}]" if s.part else "")
                lines.append(
                    f"  {number!s:>4} {s.kind:<10} {len(s.frames):>6}  {s.geometry_text:<38} "
                    f"{s.scaling:<22} '{name}': {s.reason}"
                )
        if self.skipped:
            lines.append("")
            lines.append(f"Skipped files ({len(self.skipped)}):")
            for sk in self.skipped[:50]:
                lines.append(f"  {sk.path}: {sk.reason}")
            if len(self.skipped) > 50:
                lines.append(f"  ... and {len(self.skipped) - 50} more")
        for note in self.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines)


# -- building the report --------------------------------------------------------------------------


def scan_dicom(path: str | Path) -> ScanReport:
    """Scan ``path`` (a folder or one file) and group what is found: headers only, no pixels.

    Library warnings are captured (the report gives the reasons) and logged at INFO level.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return build_report(scan_files(path))
        finally:
            for w in caught:
                log.info("library warning while scanning %s: %s", path, w.message)


def build_report(scan: FolderScan) -> ScanReport:
    """Group scanned files into studies and series volumes; classify and check each."""
    skipped = list(scan.skipped)
    by_study: dict[str, list[ScannedFile]] = defaultdict(list)
    seen_sop: dict[str, Path] = {}
    for sf in scan.files:
        sop = sf.frames[0].sop_instance_uid
        if sop in seen_sop:
            skipped.append(
                SkippedFile(
                    sf.path,
                    f"duplicate copy of SOP instance already read from {seen_sop[sop].name}",
                )
            )
            continue
        seen_sop[sop] = sf.path
        by_study[sf.header.study_uid].append(sf)
    studies = []
    for study_uid, files in by_study.items():
        by_series: dict[str, list[ScannedFile]] = defaultdict(list)
        for sf in files:
            by_series[sf.header.series_uid].append(sf)
        series: list[SeriesInfo] = []
        for sfs in by_series.values():
            series.extend(_split_series(sfs))
        series.sort(key=lambda s: (s.header.series_number or 0, s.header.series_uid, s.part))
        first = files[0].header
        studies.append(
            StudyInfo(
                study_uid=study_uid,
                description=first.study_description,
                series=tuple(series),
                n_patients=len({sf.header.patient_key for sf in files}),
                patient=first.patient,
            )
        )
    return ScanReport(scan.root, tuple(studies), tuple(skipped), scan.n_seen)


def _classify(header: SeriesHeader, frame: FrameRef, cache: dict) -> Classification:
    key = (frame.image_type, frame.frame_index is not None, frame.private_hints)
    if key not in cache:
        cache[key] = classify_image(
            image_type=frame.image_type,
            enhanced=frame.frame_index is not None,
            private_hints=frame.private_hints,
            series_description=header.series_description,
            modality=header.modality,
            sop_class_uid=header.sop_class_uid,
        )
    return cache[key]


def _split_series(files: Sequence[ScannedFile]) -> list[SeriesInfo]:
    """Split one series into volumes: by classified kind and ImageType/FrameType first; then,
    only where positions repeat, by echo (EchoNumbers/EchoTime) and by InstanceNumber blocks."""
    header = files[0].header
    cache: dict = {}
    groups: dict[tuple, list[FrameRef]] = defaultdict(list)
    classes: dict[tuple, Classification] = {}
    for sf in files:
        for fr in sf.frames:
            cls = _classify(sf.header, fr, cache)
            key = (cls.kind, fr.image_type, fr.private_hints)
            groups[key].append(fr)
            classes[key] = cls
    n_kinds = len({k[0] for k in groups})
    parts: list[tuple[str, Classification, list[FrameRef]]] = []
    for key, frames in groups.items():
        kind, image_type = key[0], key[1]
        type_label = ""
        if len(groups) > 1:
            same_kind = sum(1 for k in groups if k[0] == kind)
            if n_kinds > 1 and same_kind == 1:
                type_label = kind_text(kind)
            else:
                type_label = "\\".join(image_type)
        for echo_label, echo_frames in _split_echoes(frames):
            for block_label, block in _split_blocks(echo_frames):
                label = ", ".join(b for b in (type_label, echo_label, block_label) if b)
                cls = classes[key]
                if block_label:
                    cls = Classification(
                        cls.kind,
                        f"{cls.reason}; {block_label} at identical positions, split by "
                        f"InstanceNumber",
                    )
                parts.append((label, cls, block))
    out = []
    for label, cls, frames in parts:
        name = f"series {header.series_number} {header.series_description!r}" + (
            f" [{label}]" if label else ""
        )
        try:
            geom, problem = plan_stack(frames, name), None
        except InputError as err:
            geom, problem = None, err.reason
        out.append(SeriesInfo(header, label, cls, tuple(frames), geom, problem))
    return out


def _position_key(f: FrameRef) -> tuple:
    return tuple(round(v, 3) for v in f.position_lps) if f.position_lps else ()


def _split_echoes(frames: list[FrameRef]) -> list[tuple[str, list[FrameRef]]]:
    """Split by echo only when positions repeat and the echoes tell the repeats apart."""
    if len({_position_key(f) for f in frames}) == len(frames):
        return [("", frames)]
    by_echo: dict[tuple, list[FrameRef]] = defaultdict(list)
    for f in frames:
        te = round(f.echo_time_ms, 3) if f.echo_time_ms is not None else None
        by_echo[(f.echo_number, te)].append(f)
    if len(by_echo) == 1:
        return [("", frames)]
    out = []
    for (number, te), group in sorted(by_echo.items(), key=lambda item: str(item[0])):
        bits = ([f"echo {number}"] if number is not None else []) + (
            [f"TE {te:g} ms"] if te is not None else []
        )
        out.append((", ".join(bits), group))
    return out


def _split_blocks(frames: list[FrameRef]) -> list[tuple[str, list[FrameRef]]]:
    """Split frames that repeat every position the same number of times into InstanceNumber blocks.

    GE stores two volumes (e.g. field map in Hz and magnitude) in one series at identical
    positions; the first block is the first volume. Anything irregular is left as one group so the
    stack check reports the duplicate positions.
    """
    if len(frames) < 2 or any(f.position_lps is None for f in frames):
        return [("", frames)]
    counts: dict[tuple, int] = defaultdict(int)
    for f in frames:
        counts[tuple(round(v, 3) for v in f.position_lps)] += 1  # type: ignore[union-attr]
    reps = set(counts.values())
    if len(reps) != 1 or (n := reps.pop()) < 2 or len(counts) < 2:
        return [("", frames)]
    if any(f.instance_number is None for f in frames) or any(
        f.frame_index is not None for f in frames
    ):
        return [("", frames)]
    ordered = sorted(frames, key=lambda f: f.instance_number)  # type: ignore[arg-type, return-value]
    size = len(ordered) // n
    blocks = [ordered[i * size : (i + 1) * size] for i in range(n)]
    for b in blocks:
        if len({tuple(round(v, 3) for v in f.position_lps) for f in b}) != size:  # type: ignore[union-attr]
            return [("", frames)]
    return [
        (
            f"block {i + 1}/{n} (instances {b[0].instance_number}-{b[-1].instance_number})",
            b,
        )
        for i, b in enumerate(blocks)
    ]
