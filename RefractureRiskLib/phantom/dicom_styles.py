"""Vendor styles for the synthetic DICOM writer: identifying tokens and stored-value encodings.

Tokens follow docs/architecture.md, "Facts about the inputs" (public rule sets; not all verified on
real exports). Scalings are not documented publicly by any vendor; the encodings here are the
variants a loader must recognise, each described exactly by a :class:`StoredEncoding` so tests can
check what was written.

Value conventions: the library holds PDFF in percent (0-100) and R2* in 1/s. A stored integer
``s`` becomes the *rescaled* value ``s * rescale_slope + rescale_intercept`` (Modality LUT /
Pixel Value Transformation) and, when a Real World Value Mapping is present, the *real-world*
value ``s * rwvm_slope + rwvm_intercept`` in ``rwvm_units``. ``to_library`` converts stored
integers to library units, which is what a correct loader must reproduce.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

VENDORS: tuple[str, ...] = ("GE", "Siemens", "Philips")

#: PDFF storage variants the writer can produce (``"default"`` picks the vendor's usual one).
PDFF_STORAGES: tuple[str, ...] = ("percent_rescaled", "permille", "percent", "fraction", "rwvm")

UINT16_MAX = 65535


@dataclass(frozen=True)
class StoredEncoding:
    """How one series' library values are stored as uint16 pixels.

    - ``rescale_slope`` / ``rescale_intercept``: written as RescaleSlope/RescaleIntercept
      (classic) or in the per-frame Pixel Value Transformation (enhanced).
    - ``rwvm_slope`` / ``rwvm_intercept`` / ``rwvm_units``: Real World Value Mapping (0040,9096)
      applied to the stored values, units as a UCUM code (None when absent).
    - ``stored_per_library_unit`` / ``stored_offset``: stored = round(library * per_unit + offset)
      for linear encodings; ``reciprocal_ms`` marks R2* stored as T2* in ms
      (T2*[ms] = 1000 / R2*[1/s], stored = round(T2* / rescale_slope)).
    - ``meaning``: what the rescaled value is (``pct``, ``permille``, ``fraction``, ``per_s``,
      ``t2star_ms``, ``signal_au``), i.e. what a loader must detect and convert from.
    - ``library_step``: worst-case round-trip error bound in library units for linear encodings
      (half a stored step); for ``reciprocal_ms`` it is the T2* step in ms.
    """

    meaning: str
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    rescale_type: str = "US"
    rwvm_slope: float | None = None
    rwvm_intercept: float | None = None
    rwvm_units: str | None = None
    rwvm_units_meaning: str | None = None
    stored_per_library_unit: float = 1.0
    stored_offset: float = 0.0
    reciprocal_ms: bool = False
    library_step: float = 0.5
    clip_low: float | None = None
    clip_high: float | None = None

    @property
    def has_rwvm(self) -> bool:
        """True when a Real World Value Mapping is written."""
        return self.rwvm_slope is not None

    def to_stored(self, values: npt.ArrayLike) -> tuple[npt.NDArray[np.uint16], int]:
        """uint16 stored values for library ``values`` and the number of voxels clipped.

        Clipping models what scanners do (PDFF limited to 0-100 %, T2* capped); it is counted
        so callers can report it. Non-finite values raise ValueError.
        """
        v = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise ValueError("values contain NaN or infinity; cannot store them as uint16")
        n_clipped = 0
        lo = -np.inf if self.clip_low is None else self.clip_low
        hi = np.inf if self.clip_high is None else self.clip_high
        outside = (v < lo) | (v > hi)
        n_clipped += int(outside.sum())
        v = np.clip(v, lo, hi)
        if self.reciprocal_ms:
            with np.errstate(divide="ignore"):
                t2s_ms = np.where(v > 0, 1000.0 / np.maximum(v, 1e-12), np.inf)
            cap_ms = UINT16_MAX * self.rescale_slope
            n_clipped += int((t2s_ms > cap_ms).sum())
            stored = np.round(np.minimum(t2s_ms, cap_ms) / self.rescale_slope)
        else:
            stored = np.round(v * self.stored_per_library_unit + self.stored_offset)
        if stored.min() < 0 or stored.max() > UINT16_MAX:
            raise ValueError(
                f"values {v.min():.4g}..{v.max():.4g} do not fit uint16 with this encoding "
                f"({self.meaning}, slope {self.rescale_slope})"
            )
        return stored.astype(np.uint16), n_clipped

    def to_library(self, stored: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Library values (pct, 1/s or a.u.) from stored integers: what a loader must compute."""
        s = np.asarray(stored, dtype=np.float64)
        if self.reciprocal_ms:
            t2s_ms = s * self.rescale_slope + self.rescale_intercept
            with np.errstate(divide="ignore"):
                return np.where(t2s_ms > 0, 1000.0 / t2s_ms, 0.0)
        return (s - self.stored_offset) / self.stored_per_library_unit


def _pdff_encoding(storage: str) -> StoredEncoding:
    clip = {"clip_low": 0.0, "clip_high": 100.0}  # scanners store PDFF limited to 0-100 %
    if storage == "percent_rescaled":  # per-mille integers, RescaleSlope 0.1 -> percent
        return StoredEncoding(
            "pct", 0.1, 0.0, "PCT", stored_per_library_unit=10.0, library_step=0.05, **clip
        )
    if storage == "permille":  # per-mille integers, no rescale and no unit evidence
        return StoredEncoding(
            "permille", 1.0, 0.0, "US", stored_per_library_unit=10.0, library_step=0.05, **clip
        )
    if storage == "percent":
        # Integer percent with slope 1: classic MR pixels are integers, and a finer step needs a
        # slope != 1 (that is "percent_rescaled"), so this variant is quantised to whole percent.
        return StoredEncoding(
            "pct", 1.0, 0.0, "PCT", stored_per_library_unit=1.0, library_step=0.5, **clip
        )
    if storage == "fraction":  # per-mille integers, RescaleSlope 0.001 -> fraction 0-1
        return StoredEncoding(
            "fraction", 0.001, 0.0, "US", stored_per_library_unit=10.0, library_step=0.05, **clip
        )
    if storage == "rwvm":  # Philips: stored per-mille, slope 1, RWVM 0.1 -> "%"
        return StoredEncoding(
            "permille",
            1.0,
            0.0,
            "US",
            rwvm_slope=0.1,
            rwvm_intercept=0.0,
            rwvm_units="%",
            rwvm_units_meaning="Percent",
            stored_per_library_unit=10.0,
            library_step=0.05,
            **clip,
        )
    raise ValueError(f"unknown pdff_storage {storage!r}; expected one of {PDFF_STORAGES}")


def pdff_encoding(vendor: str, storage: str) -> StoredEncoding:
    """Encoding of the PDFF series for ``vendor`` and ``storage`` (``"default"`` allowed)."""
    style = vendor_style(vendor)
    name = style.default_pdff_storage if storage == "default" else storage
    if name == "rwvm" and style.name != "Philips":
        raise ValueError("pdff_storage 'rwvm' is the Philips style; use vendor='Philips'")
    return _pdff_encoding(name)


def r2s_encoding(vendor: str, as_t2star: bool = False) -> StoredEncoding:
    """Encoding of the R2* series: uint16 with slope 0.1 1/s (Siemens: integer 1/s).

    ``as_t2star`` (Philips only): T2* in ms with RescaleSlope 0.01 ms; R2* below
    1000 / 655.35 ms = 1.53 1/s (background) is stored at the cap and counted as clipped.
    """
    style = vendor_style(vendor)
    if as_t2star:
        if style.name != "Philips":
            raise ValueError("r2s_as_t2star is the Philips style; use vendor='Philips'")
        return StoredEncoding(
            "t2star_ms",
            0.01,
            0.0,
            "US",
            rwvm_slope=0.01,
            rwvm_intercept=0.0,
            rwvm_units="ms",
            rwvm_units_meaning="millisecond",
            reciprocal_ms=True,
            library_step=0.005,
            clip_low=0.0,
        )
    if style.name == "Siemens":
        return StoredEncoding("per_s", 1.0, 0.0, "US", library_step=0.5, clip_low=0.0)
    if style.name == "Philips":
        return StoredEncoding(
            "per_s",
            0.1,
            0.0,
            "US",
            rwvm_slope=0.1,
            rwvm_intercept=0.0,
            rwvm_units="/s",
            rwvm_units_meaning="per second",
            stored_per_library_unit=10.0,
            library_step=0.05,
            clip_low=0.0,
        )
    return StoredEncoding(
        "per_s", 0.1, 0.0, "US", stored_per_library_unit=10.0, library_step=0.05, clip_low=0.0
    )


def magnitude_encoding(values: npt.ArrayLike, vendor: str = "GE") -> StoredEncoding:
    """Encoding of a magnitude image (water, fat, in/out-phase): 12-bit range, slope to a.u.

    The slope maps the largest value to 4000 (round-trip error <= half a slope); it is the
    16-character decimal string DICOM can hold, so reader and writer use the same number.
    Philips also writes the same mapping as a Real World Value Mapping with UCUM unit "1".
    """
    from pydicom.valuerep import format_number_as_ds

    v = np.asarray(values, dtype=np.float64)
    lo = min(0.0, float(v.min()))
    span = float(v.max()) - lo
    slope = float(format_number_as_ds(span / 4000.0)) if span > 0 else 1.0
    intercept = float(format_number_as_ds(lo)) if lo < 0 else 0.0
    rwvm = {}
    if vendor_style(vendor).name == "Philips":
        rwvm = {
            "rwvm_slope": slope,
            "rwvm_intercept": intercept,
            "rwvm_units": "1",
            "rwvm_units_meaning": "no units",
        }
    return StoredEncoding(
        "signal_au",
        slope,
        intercept,
        "US",
        **rwvm,
        stored_per_library_unit=1.0 / slope,
        stored_offset=-intercept / slope,
        library_step=slope / 2.0,
    )


@dataclass(frozen=True)
class VendorStyle:
    """Identifying attributes of one vendor's quantitative fat-water export."""

    name: str
    manufacturer: str
    model: str
    software_versions: str
    sequence_name: str
    default_pdff_storage: str
    image_type: Mapping[str, tuple[str, ...]]
    series_description: Mapping[str, str]
    scanning_sequence: str = "GR"
    sequence_variant: str = "SS\\SP"
    mr_acquisition_type: str = "3D"


def _frozen(d: dict) -> Mapping:
    return MappingProxyType(d)


_GE = VendorStyle(
    name="GE",
    manufacturer="GE MEDICAL SYSTEMS",
    model="SIGNA Synthetic",
    software_versions="SYN\\LX\\MR Software release:SYNTHETIC",
    sequence_name="IDEAL_IQ",
    default_pdff_storage="percent_rescaled",
    image_type=_frozen(
        {
            "pdff": ("ORIGINAL", "PRIMARY", "FAT_FRACTION"),
            "water": ("ORIGINAL", "PRIMARY", "WATER"),
            "fat": ("ORIGINAL", "PRIMARY", "FAT"),
            "in_phase": ("ORIGINAL", "PRIMARY", "IN_PHASE"),
            "out_phase": ("ORIGINAL", "PRIMARY", "OUT_PHASE"),
            "r2s": ("ORIGINAL", "PRIMARY", "R2_STAR_MAP"),
        }
    ),
    series_description=_frozen(
        {
            "pdff": "FatFrac: IDEAL IQ SPINE",
            "water": "WATER: IDEAL IQ SPINE",
            "fat": "FAT: IDEAL IQ SPINE",
            "in_phase": "InPhase: IDEAL IQ SPINE",
            "out_phase": "OutPhase: IDEAL IQ SPINE",
            "r2s": "R2*: IDEAL IQ SPINE",
        }
    ),
)

_SIEMENS = VendorStyle(
    name="Siemens",
    manufacturer="SIEMENS",
    model="Synthetic_fit",
    software_versions="syngo MR SYNTHETIC",
    sequence_name="*fl3d6",
    default_pdff_storage="permille",
    image_type=_frozen(
        {
            "pdff": ("DERIVED", "PRIMARY", "DIXON", "FAT_FRAC"),
            "water": ("DERIVED", "PRIMARY", "DIXON", "WATER"),
            "fat": ("DERIVED", "PRIMARY", "DIXON", "FAT"),
            "in_phase": ("DERIVED", "PRIMARY", "DIXON", "IN_PHASE"),
            "out_phase": ("DERIVED", "PRIMARY", "DIXON", "OPP_PHASE"),
            "r2s": ("DERIVED", "PRIMARY", "R2_STAR_MAP"),
        }
    ),
    series_description=_frozen(
        {
            "pdff": "t1_vibe_q-dixon_tra_FatFraction",
            "water": "t1_vibe_q-dixon_tra_W",
            "fat": "t1_vibe_q-dixon_tra_F",
            "in_phase": "t1_vibe_q-dixon_tra_in",
            "out_phase": "t1_vibe_q-dixon_tra_opp",
            "r2s": "t1_vibe_q-dixon_tra_R2Star",
        }
    ),
    sequence_variant="SK\\SP",
)

_PHILIPS = VendorStyle(
    name="Philips",
    manufacturer="Philips Medical Systems",
    model="Synthetic dStream",
    software_versions="5.9.0\\SYNTHETIC",
    sequence_name="mDIXON-Quant",
    default_pdff_storage="rwvm",
    image_type=_frozen(
        {
            "pdff": ("DERIVED", "PRIMARY", "FF", "FF"),
            "water": ("DERIVED", "PRIMARY", "W", "W"),
            "fat": ("DERIVED", "PRIMARY", "F", "F"),
            "in_phase": ("DERIVED", "PRIMARY", "IP", "IP"),
            "out_phase": ("DERIVED", "PRIMARY", "OP", "OP"),
            "r2s": ("DERIVED", "PRIMARY", "R2_STAR", "R2_STAR"),
            "t2s": ("DERIVED", "PRIMARY", "T2_STAR", "T2_STAR"),
        }
    ),
    series_description=_frozen(
        {
            "pdff": "mDIXON-Quant_BH FF",
            "water": "mDIXON-Quant_BH W",
            "fat": "mDIXON-Quant_BH F",
            "in_phase": "mDIXON-Quant_BH IP",
            "out_phase": "mDIXON-Quant_BH OP",
            "r2s": "mDIXON-Quant_BH R2*",
            "t2s": "mDIXON-Quant_BH T2*",
            "mixed": "mDIXON-Quant_BH",
        }
    ),
)

#: Philips enhanced multi-frame FrameType (0008,9007) per kind (docs/architecture.md, "Facts about
#: the inputs").
PHILIPS_FRAME_TYPE: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "pdff": ("DERIVED", "PRIMARY", "DIXON", "FAT_FRACTION"),
        "water": ("DERIVED", "PRIMARY", "DIXON", "WATER"),
        "fat": ("DERIVED", "PRIMARY", "DIXON", "FAT"),
        "in_phase": ("DERIVED", "PRIMARY", "DIXON", "IN_PHASE"),
        "out_phase": ("DERIVED", "PRIMARY", "DIXON", "OUT_PHASE"),
        "r2s": ("DERIVED", "PRIMARY", "R2_STAR", "R2_STAR"),
        "t2s": ("DERIVED", "PRIMARY", "T2_STAR", "T2_STAR"),
    }
)

#: Philips private (2005,1011) image-type token per kind.
PHILIPS_PRIVATE_TYPE: Mapping[str, str] = MappingProxyType(
    {
        "pdff": "FF",
        "water": "W",
        "fat": "F",
        "in_phase": "IP",
        "out_phase": "OP",
        "r2s": "R2_STAR",
        "t2s": "T2_STAR",
    }
)

_STYLES = {s.name.upper(): s for s in (_GE, _SIEMENS, _PHILIPS)}


def vendor_style(vendor: str) -> VendorStyle:
    """The style for ``vendor`` ("GE", "Siemens" or "Philips", case-insensitive)."""
    try:
        return _STYLES[vendor.strip().upper()]
    except KeyError:
        raise ValueError(f"unknown vendor style {vendor!r}; expected one of {VENDORS}") from None
