"""``Study``: the quantitative maps of one acquisition on one grid, with provenance.

Inside the library PDFF is always percent (0-100) and R2* always 1/s; the loader converts and
records every conversion in :class:`SeriesProvenance.scaling`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from RefractureRiskLib.core.volume import Volume

#: Map kinds a Study can hold (raw echoes are ``echo_1``, ``echo_2``, ...).
MAP_KINDS: tuple[str, ...] = ("pdff", "r2s", "water", "fat", "in_phase", "out_phase")

#: Unit of each map kind inside the library.
MAP_UNITS: Mapping[str, str] = MappingProxyType(
    {
        "pdff": "pct",
        "r2s": "per_s",
        "water": "signal_au",
        "fat": "signal_au",
        "in_phase": "signal_au",
        "out_phase": "signal_au",
    }
)


def is_known_kind(kind: str) -> bool:
    """True for the kinds in :data:`MAP_KINDS` and raw echoes ``echo_<n>``."""
    return kind in MAP_KINDS or (kind.startswith("echo_") and kind[5:].isdigit())


@dataclass(frozen=True)
class SeriesProvenance:
    """Where one map came from and what was done to its values.

    ``classified_by`` says why the series was taken as this kind (e.g. "ImageType token
    FAT_FRACTION"); ``scaling`` lists every value conversion applied, in order.
    """

    kind: str
    series_uid: str | None = None
    series_description: str | None = None
    source: str | None = None
    classified_by: str = ""
    scaling: tuple[str, ...] = ()
    resampled: bool = False


@dataclass(frozen=True)
class StudyProvenance:
    """Acquisition facts later steps need; R2* is meaningless without ``field_strength_t``."""

    vendor: str = "unknown"
    manufacturer_model: str | None = None
    field_strength_t: float | None = None
    echo_times_ms: tuple[float, ...] = ()
    study_uid: str | None = None
    frame_of_reference_uid: str | None = None
    series: Mapping[str, SeriesProvenance] = field(default_factory=dict)


def nominal_field_t(value: float | None) -> float | None:
    """Nominal field strength: scanners report e.g. 1.494 or 2.89362 T for 1.5 and 3 T systems.

    Within 10 % of 1.5 or 3.0 T gives that value; anything else is kept (rounded to 1 mT), so
    that a check against the allowed values reports it.
    """
    if value is None:
        return None
    t = float(value)
    for nominal in (1.5, 3.0):
        if abs(t - nominal) <= 0.1 * nominal:
            return nominal
    return round(t, 3)


@dataclass(frozen=True)
class PatientInfo:
    """Non-identifying facts used to prefill clinical inputs. Never holds a name or an ID."""

    age_years: float | None = None
    sex: str | None = None  # "F", "M" or None


@dataclass(frozen=True, eq=False)
class Study:
    """Maps of one acquisition keyed by kind, all on the same grid."""

    maps: Mapping[str, Volume]
    provenance: StudyProvenance = field(default_factory=StudyProvenance)
    patient: PatientInfo = field(default_factory=PatientInfo)

    def __post_init__(self) -> None:
        if not self.maps:
            raise ValueError("a Study needs at least one map")
        unknown = [k for k in self.maps if not is_known_kind(k)]
        if unknown:
            raise ValueError(f"unknown map kind(s) {unknown}; expected {MAP_KINDS} or echo_<n>")
        ref_kind = "pdff" if "pdff" in self.maps else next(iter(self.maps))
        ref = self.maps[ref_kind]
        for kind, vol in self.maps.items():
            if not vol.same_grid(ref):
                raise ValueError(
                    f"map {kind!r} is not on the grid of {ref_kind!r}: "
                    f"{vol.describe_geometry()} vs {ref.describe_geometry()}; resample it first"
                )
        object.__setattr__(self, "maps", MappingProxyType(dict(self.maps)))

    @property
    def grid(self) -> Volume:
        """The reference grid (the PDFF map when present)."""
        return self.maps["pdff"] if "pdff" in self.maps else next(iter(self.maps.values()))

    @property
    def pdff(self) -> Volume:
        """Proton-density fat fraction in percent (0-100)."""
        return self._require("pdff")

    @property
    def r2s(self) -> Volume:
        """R2* in 1/s (field-strength dependent: see ``provenance.field_strength_t``)."""
        return self._require("r2s")

    def _require(self, kind: str) -> Volume:
        if kind not in self.maps:
            raise KeyError(f"study has no {kind!r} map (has: {', '.join(self.maps)})")
        return self.maps[kind]
