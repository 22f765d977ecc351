"""Fuzz the DICOM loader: mutated real and phantom files against ``load_study``.

Every mutation must end in a loaded study or the project's own :class:`InputError` (one line
naming the file and the tag); anything else (an exception of another type: a traceback for the
user) is counted and its first tracebacks are printed. Goal: 0.

Seeds (each a small study folder, copied once to a temporary folder in RAM where possible):

- phantom IDEAL-IQ-style studies from :func:`RefractureRiskLib.phantom.dicom_writer.
  write_dicom_study`: GE classic PDFF + R2*, Siemens classic, Philips enhanced multi-frame;
- real files from ``../shared/data/dicom/dcm_qa_fmap`` (skipped with a message if absent):
  a few slices of a GE and a Siemens series and the Philips enhanced file, as they are (no
  PDFF: refused early) and relabelled as fat-fraction maps (ImageType), so the mutated values
  reach the geometry, pixel and unit checks.

Each iteration changes 1-3 things in one or two files of one seed, in memory with pydicom or
on the raw bytes, writes the file over its copy, calls ``load_study`` and restores the copy
(each seed file is parsed once; a mutation works on a copy that converts and re-encodes only
what it touches, and writes the same bytes reading and writing the file would):

- header: delete a random element; give a random or a geometry/pixel element a value of the
  wrong type or an absurd one (huge, negative, NaN, inf, empty, too many or too few values,
  non-ASCII, very long); change an element's VR to UN;
- raw bytes: truncate the file; flip bytes in the header or anywhere;
- pixel data: truncate, make odd, remove, flip bytes.

Usage::

    python bench/fuzz_dicom.py            # 100000 mutations
    python bench/fuzz_dicom.py --n 2000 --seed 3 --show 5

Runs of record (issue 11; one run each, on 2 cores shared with other work, niced)::

    nice -n 15 python bench/fuzz_dicom.py --n 100000 --seed 11 --progress 5000   # rev c004876
    100000 mutations in 3087 s (32/s): 31962 loaded, 68038 refused with InputError,
    0 ended in anything else
    nice -n 15 python bench/fuzz_dicom.py --n 100000 --seed 12 --progress 5000 --minutes 38
    100000 mutations in 1408 s (71/s): 31934 loaded, 68066 refused with InputError,
    0 ended in anything else                                                     # rev 13ef0e3
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import math
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import FileDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_sequence
from pydicom.tag import Tag

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from RefractureRiskLib.core import InputError, PatientInfo, Study, StudyProvenance, Volume  # noqa: E402
from RefractureRiskLib.io.dicom_load import load_study  # noqa: E402
from RefractureRiskLib.phantom.dicom_writer import write_dicom_study  # noqa: E402

REAL_DATA = REPO.parent / "shared" / "data" / "dicom" / "dcm_qa_fmap" / "In"
#: Real series (folder under REAL_DATA, how many of its files to keep).
REAL_SERIES = (("GE/6_CV_Neuro", 6), ("Siemens/4_gre_field_ph", 6), ("Philips/fmap", 1))

#: Elements the loader reads: mutated more often than a random one.
TARGETS = [
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "NumberOfFrames",
    "PixelSpacing",
    "SliceThickness",
    "SpacingBetweenSlices",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "ImageType",
    "SeriesDescription",
    "SeriesNumber",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "InstanceNumber",
    "EchoTime",
    "MagneticFieldStrength",
    "Manufacturer",
    "ManufacturerModelName",
    "FrameOfReferenceUID",
    "PatientID",
    "PatientAge",
    "PatientSex",
    "PatientBirthDate",
    "StudyDate",
    "AcquisitionNumber",
    "WindowCenter",
    "WindowWidth",
    "PerFrameFunctionalGroupsSequence",
    "SharedFunctionalGroupsSequence",
]

TEXT_VALUES = (
    "",
    " ",
    "nan",
    "NaN\\NaN",
    "inf",
    "-inf",
    "1e309",
    "-1e30",
    "1e30",
    "0",
    "-1",
    "-5.5",
    "65536",
    "2147483648",
    "abc",
    "1\\2\\3\\4\\5\\6\\7",
    "0\\0\\0\\0\\0\\0",
    "1\\0\\0\\1\\0\\0",
    "1\\0\\0\\0\\1\\0",
    "\x00\x01",
    "é\u00ff",
    "x" * 300,
    "0.5\\0.5",
    "-0.7\\0.7",
    "3.0\\",
)
NUMBERS = (0, 1, -1, 7, 8, 12, 16, 17, 32, 64, 255, 256, 65535, 2**31 - 1, -(2**31), 2**32 - 1)
FLOATS = (0.0, -0.0, 1e308, -1e308, float("nan"), float("inf"), -float("inf"), 1e-320, -3.5)


@dataclass
class Seed:
    """One study folder of the corpus: its files and their original bytes."""

    name: str
    folder: Path
    files: list[Path]
    original: list[bytes]


@dataclass
class Report:
    n: int = 0
    loaded: int = 0
    input_errors: int = 0
    other: int = 0
    seconds: float = 0.0
    signatures: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    per_seed: Counter = field(default_factory=Counter)


# ---------------------------------------------------------------------------------------------
# The corpus


def _phantom_study(shape=(4, 10, 12)) -> Study:
    rng = np.random.default_rng(0)
    pdff = rng.uniform(5, 60, shape)
    pdff.flat[0], pdff.flat[1] = 0.0, 100.0
    r2s = rng.uniform(20, 150, shape)
    affine = np.array(
        [[0, 0, 3.0, -9.0], [-1.5, 0, 0, 15.0], [0, -1.5, 0, 40.0], [0, 0, 0, 1]], float
    )
    return Study(
        {"pdff": Volume(pdff, affine), "r2s": Volume(r2s, affine)},
        StudyProvenance(field_strength_t=1.5),
        PatientInfo(age_years=70, sex="F"),
    )


def _seed(name: str, folder: Path) -> Seed:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return Seed(name, folder, files, [p.read_bytes() for p in files])


def _relabel_as_pdff(path: Path) -> None:
    """ImageType/FrameType say fat fraction; the rescale maps the stored range into 0-100."""
    ds = pydicom.dcmread(path)
    tokens = ["DERIVED", "PRIMARY", "FAT_FRACTION"]
    ds.ImageType = tokens
    ds.SeriesDescription = "FatFrac: relabelled real file"
    ds.RescaleSlope, ds.RescaleIntercept = "0.012", "50"
    for item in ds.get("PerFrameFunctionalGroupsSequence", []):
        for group in item.get("MRImageFrameTypeSequence", []):
            group.FrameType = tokens
        for group in item.get("PixelValueTransformationSequence", []):
            group.RescaleSlope, group.RescaleIntercept = "0.012", "50"
    ds.save_as(path)


def _keep_frames(path: Path, n: int) -> None:
    """An enhanced file cut to its first ``n`` frames (mutating 64 frames' groups is slow)."""
    ds = pydicom.dcmread(path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames <= n or "PerFrameFunctionalGroupsSequence" not in ds:
        return
    frame_bytes = len(ds.PixelData) // frames
    ds.PerFrameFunctionalGroupsSequence = ds.PerFrameFunctionalGroupsSequence[:n]
    ds.NumberOfFrames = n
    ds.PixelData = ds.PixelData[: n * frame_bytes]
    ds.save_as(path)


def _first_slices(source: Path, keep: int) -> list[Path]:
    """``keep`` files of a series that are neighbours in InstanceNumber (a contiguous stack)."""
    numbered = []
    for p in sorted(q for q in source.iterdir() if q.is_file()):
        with contextlib.suppress(Exception):
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            numbered.append((int(ds.get("InstanceNumber", 0) or 0), p))
    return [p for _, p in sorted(numbered)[:keep]]


def build_corpus(work: Path, real: bool = True) -> tuple[list[Seed], list[str]]:
    """Write the seed studies under ``work``; returns them and notes (e.g. real data absent)."""
    notes: list[str] = []
    seeds: list[Seed] = []
    study = _phantom_study()
    for vendor, kw in (("GE", {}), ("Siemens", {}), ("Philips", {"philips_enhanced": True})):
        folder = work / f"phantom_{vendor}"
        write_dicom_study(study, folder, vendor=vendor, kinds=["pdff", "r2s"], seed=1, **kw)
        seeds.append(_seed(f"phantom {vendor}{' enhanced' if kw else ''}", folder))
    if not real:
        return seeds, notes
    if not REAL_DATA.is_dir():
        notes.append(f"real DICOM files not found at {REAL_DATA}: phantom seeds only")
        return seeds, notes
    for series, keep in REAL_SERIES:
        source = REAL_DATA / series
        files = _first_slices(source, keep)
        if not files:
            notes.append(f"{source}: no files, skipped")
            continue
        for relabel in (False, True):
            folder = work / f"real_{series.replace('/', '_')}{'_pdff' if relabel else ''}"
            folder.mkdir(parents=True)
            for f in files:
                shutil.copy(f, folder / f.name)
                _keep_frames(folder / f.name, 6)
                if relabel:
                    _relabel_as_pdff(folder / f.name)
            seeds.append(_seed(f"real {series}{' as PDFF' if relabel else ''}", folder))
    return seeds, notes


# ---------------------------------------------------------------------------------------------
# Mutations


def _random_tag(ds: pydicom.Dataset, rng: np.random.Generator):
    # The tags in the order iterating the dataset gives, without converting every raw element
    # (iterating a Dataset converts each one, which made this the harness's slowest step).
    tags = [t for t in sorted(ds.keys()) if t != 0x7FE00010]
    if rng.random() < 0.6:
        names = [k for k in TARGETS if k in ds]
        if names:
            return Tag(pydicom.datadict.tag_for_keyword(str(rng.choice(names))))
    return tags[int(rng.integers(len(tags)))] if tags else None


def _sequence_tags(ds: pydicom.Dataset) -> list:
    """The tags of ``ds``'s non-empty sequences, in tag order: what iterating ``ds`` would find,
    without converting the elements that cannot be one (an explicit VR other than SQ or UN) nor
    the template's raw sequences (their item counts are known; see :func:`_template`)."""
    found = []
    for tag in sorted(ds.keys()):
        raw = ds.get_item(tag)
        if raw.is_raw and raw in _RAW_SQ_ITEMS:
            if _RAW_SQ_ITEMS[raw]:
                found.append(tag)
        elif raw.VR in (None, "SQ", "UN") and ds[tag].VR == "SQ" and len(ds[tag].value):
            found.append(tag)
    return found


def _nested(ds: pydicom.Dataset, rng: np.random.Generator) -> pydicom.Dataset:
    """A dataset to mutate: the top level, or an item of a (functional group) sequence."""
    target = ds
    for _ in range(3):
        seqs = _sequence_tags(target)
        if not seqs or rng.random() < 0.5:
            break
        seq = target[seqs[int(rng.integers(len(seqs)))]]
        target = seq.value[int(rng.integers(len(seq.value)))]
    return target


def _bad_value(vr: str, rng: np.random.Generator):
    if vr in ("US", "UL", "SS", "SL", "UV", "SV"):
        if rng.random() < 0.3:
            return [int(v) for v in rng.choice(NUMBERS, size=int(rng.integers(0, 4)))]
        return int(rng.choice(NUMBERS))
    if vr in ("FD", "FL"):
        if rng.random() < 0.3:
            return [float(v) for v in rng.choice(FLOATS, size=int(rng.integers(0, 7)))]
        return float(rng.choice(FLOATS))
    if vr in ("OB", "OW", "UN", "OF", "OD"):
        return bytes(rng.integers(0, 256, int(rng.integers(0, 9)), dtype=np.uint8))
    if vr == "SQ":
        return []
    return str(rng.choice(TEXT_VALUES))


def _header_mutation(ds: pydicom.Dataset, rng: np.random.Generator) -> None:
    target = _nested(ds, rng)
    tag = _random_tag(target, rng)
    if tag is None:
        return
    what = rng.random()
    if what < 0.25:
        del target[tag]
        return
    vr = target[tag].VR
    if what < 0.35:  # the VR of a known element becomes UN, with random bytes
        target[tag] = DataElement(tag, "UN", bytes(rng.integers(0, 256, 6, dtype=np.uint8)))
        return
    if what < 0.45:  # a value typed for another VR
        vr = str(rng.choice(["US", "DS", "IS", "CS", "FD", "UL", "LO"]))
        with contextlib.suppress(KeyError):
            if dictionary_VR(tag) == vr:
                vr = "LO"
        target[tag] = DataElement(tag, vr, _bad_value(vr, rng))
        return
    target[tag] = DataElement(tag, vr, _bad_value(vr, rng))


def _pixel_mutation(ds: pydicom.Dataset, rng: np.random.Generator) -> None:
    if "PixelData" not in ds:
        return
    data = bytearray(ds.PixelData)
    what = rng.random()
    if what < 0.3:
        data = data[: int(rng.integers(0, max(1, len(data))))]
    elif what < 0.45:
        data = data + b"\x00" if len(data) % 2 == 0 else data[:-1]
    elif what < 0.55:
        del ds.PixelData
        return
    elif what < 0.7:
        data = data + bytes(int(rng.integers(2, 4096)))
    else:
        for _ in range(int(rng.integers(1, 64))):
            if data:
                data[int(rng.integers(len(data)))] = int(rng.integers(256))
    ds.PixelData = bytes(data)


def _byte_mutation(data: bytes, rng: np.random.Generator) -> bytes:
    what = rng.random()
    buf = bytearray(data)
    if what < 0.35:
        return bytes(buf[: int(rng.integers(0, len(buf)))])
    region = len(buf) if what < 0.6 else min(len(buf), 4096)
    for _ in range(int(rng.integers(1, 16))):
        i = int(rng.integers(region))
        buf[i] = (
            int(rng.integers(256)) if rng.random() < 0.5 else buf[i] ^ (1 << int(rng.integers(8)))
        )
    return bytes(buf)


#: A seed file's bytes -> its dataset as read, elements left raw and every top-level sequence
#: held as one raw element of its encoded items (see :func:`_template`).
_TEMPLATES: dict[bytes, FileDataset] = {}
#: A template's raw sequence element -> its number of items.
_RAW_SQ_ITEMS: dict[RawDataElement, int] = {}


def _template(data: bytes) -> FileDataset:
    """``data`` read once: a mutation then starts from a copy of this and never parses nor
    re-encodes what it leaves alone (parsing and writing every file's nested sequences again at
    each mutation was most of the harness's time); the bytes written for an unmutated copy are
    the bytes ``dcmread`` + ``save_as`` write (``Testing/test_fuzz_dicom.py`` checks it)."""
    if data in _TEMPLATES:
        return _TEMPLATES[data]
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    parsed = pydicom.dcmread(io.BytesIO(data), force=True)  # converted, to find the sequences
    implicit, little = ds.original_encoding
    charset = parsed.get("SpecificCharacterSet", "ISO_IR 6")
    for tag in sorted(parsed.keys()):
        if ds.get_item(tag).VR not in (None, "SQ", "UN") or parsed[tag].VR != "SQ":
            continue
        buf = DicomBytesIO()
        buf.is_implicit_VR, buf.is_little_endian = implicit, little
        write_sequence(buf, parsed[tag], charset)
        value = buf.getvalue()
        length = 0xFFFFFFFF if parsed[tag].is_undefined_length else len(value)
        raw = RawDataElement(tag, "SQ", length, value, 0, implicit, little, True, False)
        ds._dict[tag] = raw
        _RAW_SQ_ITEMS[raw] = len(parsed[tag].value)
    _TEMPLATES[data] = ds
    return ds


def _fresh_copy(template: FileDataset) -> FileDataset:
    """A dataset to mutate: its own element dict over the template's raw (immutable) elements;
    an element is converted in the copy only, when a mutation reads or changes it."""
    ds = FileDataset(
        None,
        dict(template._dict),
        preamble=template.preamble,
        file_meta=copy.deepcopy(template.file_meta),
    )
    ds.set_original_encoding(*template.original_encoding, template.original_character_set)
    return ds


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """1-3 mutations of one file's bytes (see the module doc)."""
    if rng.random() < 0.25:
        return _byte_mutation(data, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = _fresh_copy(_template(data))
        except Exception:
            return _byte_mutation(data, rng)
        for _ in range(int(rng.integers(1, 4))):
            try:
                if rng.random() < 0.2:
                    _pixel_mutation(ds, rng)
                else:
                    _header_mutation(ds, rng)
            except Exception:  # a value pydicom refuses to hold: try another mutation
                continue
        out = io.BytesIO()
        try:
            ds.save_as(out, enforce_file_format=False)
        except Exception:  # pydicom refuses to write it: mutate the bytes instead
            return _byte_mutation(data, rng)
        result = out.getvalue()
    if rng.random() < 0.1:
        result = _byte_mutation(result, rng)
    return result


# ---------------------------------------------------------------------------------------------
# The run


def _signature(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if "RefractureRiskLib" in f.filename] or frames
    where = ours[-1] if ours else None
    at = f"{Path(where.filename).name}:{where.lineno}" if where else "?"
    return f"{type(err).__name__} at {at}"


def run(
    n: int,
    seed: int = 0,
    real: bool = True,
    work: Path | None = None,
    deadline: float | None = None,
    progress: int = 0,
    keep: Path | None = None,
) -> Report:
    """``n`` mutations over the corpus; returns the counts and the distinct failures.

    ``deadline`` (a ``time.time()`` value) stops the run early: the report then counts the
    mutations actually made. ``progress`` > 0 prints a count line every that many mutations.
    """
    base = work or Path(tempfile.mkdtemp(prefix="fuzz-dicom-", dir=_ram_dir()))
    report = Report()
    logging.getLogger("RefractureRiskLib").setLevel(logging.ERROR)  # "series not loaded" notes
    try:
        seeds, notes = build_corpus(base, real=real)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        rng = np.random.default_rng(seed)
        t0 = time.perf_counter()
        for i in range(n):
            if deadline is not None and time.time() >= deadline:
                print(f"deadline reached after {report.n} mutations", file=sys.stderr)
                break
            if progress and i and i % progress == 0:
                print(
                    f"progress: {report.n} done, {report.other} not InputError "
                    f"({time.perf_counter() - t0:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
            s = seeds[int(rng.integers(len(seeds)))]
            k = int(rng.integers(1, 3)) if len(s.files) > 1 else 1
            picked = [int(j) for j in rng.choice(len(s.files), size=k, replace=False)]
            for j in picked:
                s.files[j].write_bytes(mutate(s.original[j], rng))
            try:
                load_study(s.folder)
                report.loaded += 1
            except InputError:
                report.input_errors += 1
            except Exception as err:  # what the fuzzer is looking for
                report.other += 1
                sig = _signature(err)
                report.signatures[sig] += 1
                report.per_seed[s.name] += 1
                if sig not in report.examples:
                    report.examples[sig] = (i, s.name, "".join(traceback.format_exception(err)))
                    if progress:  # a long run shows what it found as it finds it
                        print(f"new: {sig} (mutation {i}, seed {s.name})", file=sys.stderr)
                    if keep is not None:  # the study folder as mutated, to reproduce it
                        shutil.copytree(s.folder, keep / f"{i:06d}", dirs_exist_ok=True)
            finally:
                for j in picked:
                    s.files[j].write_bytes(s.original[j])
            report.n += 1
        report.seconds = time.perf_counter() - t0
    finally:
        if work is None:
            shutil.rmtree(base, ignore_errors=True)
    return report


def _ram_dir() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and shm.stat().st_mode & 0o002 else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="mutations (100000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--show", type=int, default=5, help="distinct tracebacks to print (5)")
    parser.add_argument("--phantom-only", action="store_true", help="no real DICOM seeds")
    parser.add_argument(
        "--minutes", type=float, default=None, help="stop after this many minutes (no limit)"
    )
    parser.add_argument(
        "--progress", type=int, default=0, help="print counts every N mutations (off)"
    )
    parser.add_argument(
        "--keep", type=Path, default=None, help="copy each new failure's study here (off)"
    )
    args = parser.parse_args(argv)
    deadline = time.time() + 60 * args.minutes if args.minutes else None
    report = run(
        args.n,
        args.seed,
        real=not args.phantom_only,
        deadline=deadline,
        progress=args.progress,
        keep=args.keep,
    )
    rate = report.n / report.seconds if report.seconds else math.nan
    if report.n < args.n:
        print(f"stopped early: {report.n} of {args.n} mutations made")
    print(
        f"{report.n} mutations in {report.seconds:.0f} s ({rate:.0f}/s): {report.loaded} loaded, "
        f"{report.input_errors} refused with InputError, {report.other} ended in anything else"
    )
    for sig, count in report.signatures.most_common():
        print(f"  {count:6d}  {sig}")
    for sig, (i, seed_name, text) in list(report.examples.items())[: args.show]:
        print(f"\n--- {sig} (mutation {i}, seed {seed_name}) ---\n{text}")
    return 0 if report.other == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
