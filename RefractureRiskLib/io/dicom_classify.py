"""Which map a DICOM image holds, and why (docs/architecture.md, Facts about the inputs).

Evidence is used in a fixed order: ImageType / FrameType tokens first, then vendor private tags,
then the SeriesDescription; never file names. Every decision carries a human-readable reason that
ends up in provenance (``classified_by``) and in the ``inspect`` table.

Kinds returned:

- fat-water maps: ``pdff``, ``r2s``, ``t2s`` (converted to R2* by the loader), ``water``, ``fat``,
  ``in_phase``, ``out_phase``;
- everything else, each refused with its reason: ``localizer``, ``field_map``, ``magnitude``,
  ``phase``, ``real``, ``imaginary``, ``not_mr``, ``unknown``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Kinds that are fat-water maps the loader can put into a Study (``t2s`` becomes ``r2s``).
FAT_WATER_KINDS: tuple[str, ...] = (
    "pdff",
    "r2s",
    "t2s",
    "water",
    "fat",
    "in_phase",
    "out_phase",
)

MR_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture (some consoles export maps this way)
    "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3",
)


@dataclass(frozen=True)
class Classification:
    """The kind of one image set and the evidence for it."""

    kind: str
    reason: str

    @property
    def is_fat_water_map(self) -> bool:
        """True for kinds the loader puts into a Study."""
        return self.kind in FAT_WATER_KINDS


# Ordered: the first matching rule wins (fat fraction before fat, R2* before magnitude).
_TOKEN_RULES: tuple[tuple[str, frozenset[str]], ...] = (
    ("localizer", frozenset({"LOCALIZER", "SCOUT", "SURVEY"})),
    ("pdff", frozenset({"FAT_FRACTION", "FAT_FRAC", "FF", "FATFRACTION", "PDFF"})),
    ("r2s", frozenset({"R2_STAR_MAP", "R2_STAR", "R2STAR", "R2STAR_MAP", "R2S"})),
    ("t2s", frozenset({"T2_STAR_MAP", "T2STAR_MAP", "T2_STAR", "T2STAR"})),
    ("water", frozenset({"WATER", "W"})),
    ("fat", frozenset({"FAT", "F"})),
    ("in_phase", frozenset({"IN_PHASE", "INPHASE", "IP"})),
    ("out_phase", frozenset({"OUT_PHASE", "OUTPHASE", "OPP_PHASE", "OP", "OPP"})),
    ("field_map", frozenset({"FIELD_MAP", "B0_MAP", "B0MAP", "FIELDMAP"})),
    ("magnitude", frozenset({"M", "MAGNITUDE", "MAG"})),
    ("phase", frozenset({"P", "PHASE"})),
    ("real", frozenset({"R", "REAL"})),
    ("imaginary", frozenset({"I", "IMAGINARY"})),
)

_DESCRIPTION_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "localizer",
        re.compile(r"locali[sz]er|\bloc\b|scout|survey|3[\s_-]?plane|\b3pl\b", re.IGNORECASE),
    ),
    ("pdff", re.compile(r"fat[\s_-]*frac|\bpdff\b|\bff\b|fat\s*%|\bfat[\s_-]*fraction", re.I)),
    ("r2s", re.compile(r"r2\s*\*|r2[\s_-]*star|\br2s\b", re.IGNORECASE)),
    ("t2s", re.compile(r"(t2\s*\*|t2[\s_-]*star)[\s_-]*map", re.IGNORECASE)),
    ("field_map", re.compile(r"\bb0|field[\s_-]*map|fmap|gre_field", re.IGNORECASE)),
    ("water", re.compile(r"\bwater\b", re.IGNORECASE)),
    ("fat", re.compile(r"\bfat\b(?![\s_-]*(sat|supp|suppressed|saturation))", re.IGNORECASE)),
    ("in_phase", re.compile(r"\bin[\s_-]*phase\b|\binphase\b", re.IGNORECASE)),
    ("out_phase", re.compile(r"\bout[\s_-]*(of[\s_-]*)?phase\b|\bopp[\s_-]*phase\b", re.I)),
)

_GE_RAW_ECHO = {"0": "magnitude", "1": "phase", "2": "real", "3": "imaginary"}
_NON_MAP_NOTE = "not a fat-water map"


def _token_kind(tokens: tuple[str, ...], enhanced: bool) -> tuple[str, str] | None:
    """Kind from ImageType/FrameType tokens (values 3 on; T2* only from value 4 in enhanced files,
    where value 3 is the image flavour / acquisition contrast)."""
    for kind, names in _TOKEN_RULES:
        for index, token in enumerate(tokens):
            if index < 2 and token != "LOCALIZER":
                continue
            if kind == "t2s" and enhanced and index < 3:
                continue
            if token in names:
                return kind, token
    return None


def classify_image(
    *,
    image_type: tuple[str, ...],
    enhanced: bool,
    private_hints: tuple[tuple[str, str], ...],
    series_description: str,
    modality: str,
    sop_class_uid: str,
) -> Classification:
    """Classify one image (or one frame) from its header evidence.

    ``image_type`` is ImageType (classic files) or the per-frame FrameType (enhanced files).
    """
    if modality and modality != "MR":
        return Classification("not_mr", f"Modality {modality}: not an MR image")
    if sop_class_uid and sop_class_uid not in MR_SOP_CLASSES:
        return Classification("not_mr", f"SOP class {sop_class_uid} is not an MR image")
    label = "FrameType" if enhanced else "ImageType"
    found = _token_kind(image_type, enhanced)
    hints = dict(private_hints)
    if found and found[0] not in ("magnitude", "phase", "real", "imaginary"):
        kind, token = found
        return Classification(kind, _reason(kind, f"{label} token {token}"))
    philips = hints.get("Philips (2005,1011) image type")
    if philips:
        pk = _token_kind(("", "", philips.upper()), enhanced=False)
        if pk and pk[0] not in ("magnitude", "phase", "real", "imaginary"):
            return Classification(pk[0], _reason(pk[0], f"Philips private (2005,1011)={philips}"))
    ge_seq = " ".join(
        hints.get(k, "")
        for k in ("GE (0019,109C) pulse sequence", "GE (0019,109E) internal sequence")
    ).strip()
    if re.search(r"b0", ge_seq, re.IGNORECASE):
        return Classification(
            "field_map",
            _reason("field_map", f"GE private (0019,109C)/(0019,109E) pulse sequence {ge_seq!r}"),
        )
    for kind, pattern in _DESCRIPTION_RULES:
        if series_description and pattern.search(series_description):
            if found is not None and kind in FAT_WATER_KINDS:
                # A magnitude/phase token contradicts a map name; the token wins.
                break
            evidence = f"SeriesDescription {series_description!r}"
            if found is not None:
                evidence = f"{label} token {found[1]} and {evidence}"
            return Classification(kind, _reason(kind, evidence))
    if found is not None:
        kind, token = found
        return Classification(kind, _reason(kind, f"{label} token {token}"))
    ge_type = hints.get("GE (0043,102F) image type")
    if ge_type in _GE_RAW_ECHO:
        kind = _GE_RAW_ECHO[ge_type]
        return Classification(kind, _reason(kind, f"GE private (0043,102F)={ge_type} (raw echo)"))
    shown = "\\".join(image_type) or "none"
    return Classification(
        "unknown",
        f"no fat-water evidence: {label} {shown}, SeriesDescription "
        f"{series_description!r}; {_NON_MAP_NOTE}",
    )


_KIND_TEXT = {
    "pdff": "fat fraction (PDFF) map",
    "r2s": "R2* map",
    "t2s": "T2* map (converted to R2*)",
    "water": "water image",
    "fat": "fat image",
    "in_phase": "in-phase image",
    "out_phase": "out-of-phase image",
    "localizer": "localizer",
    "field_map": "B0 field map",
    "magnitude": "magnitude image",
    "phase": "phase image",
    "real": "real-part image",
    "imaginary": "imaginary-part image",
}


def _reason(kind: str, evidence: str) -> str:
    text = f"{evidence} -> {_KIND_TEXT.get(kind, kind)}"
    if kind not in FAT_WATER_KINDS:
        text += f"; {_NON_MAP_NOTE}"
    return text


def kind_text(kind: str) -> str:
    """Human name of a kind, for tables and messages."""
    return _KIND_TEXT.get(kind, kind)
