"""``PhantomSpec``: what synthetic IDEAL-IQ spine study to build (all options, validated)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS

ORIENTATIONS: tuple[str, ...] = ("sagittal", "axial")
FIELD_STRENGTHS_T: tuple[float, ...] = (1.5, 3.0)
#: Fracture deformities: uniform height loss, anterior wedge, central end-plate depression.
FRACTURE_SHAPES: tuple[str, ...] = ("crush", "wedge", "biconcave")
#: Lumbosacral transitional anatomy the phantom can build (see ``PhantomSpec.transitional``).
TRANSITIONAL_KINDS: tuple[str, ...] = ("sacralised_L5", "lumbarised_S1")


def _frozen_map(value: Mapping[str, float] | None) -> Mapping[str, float] | None:
    if value is None:
        return None
    return MappingProxyType({str(k).strip().upper(): float(v) for k, v in dict(value).items()})


@dataclass(frozen=True)
class PhantomSpec:
    """Options of one synthetic study. Every field has a default; the default is a sagittal
    1.5 T study of T10-S1 with 3 mm slices, 1.25 mm pixels (about 266 x 266 x 32), noiseless.

    Geometry: sagittal grids have slices along L-R (k: left -> right), rows S -> I (j) and
    columns A -> P (i); axial grids have slices I -> S (k), rows A -> P (j), columns R -> L (i).
    ``oblique_deg`` tilts the grid about the S-I axis (sagittal) or the L-R axis (axial),
    about the grid centre. ``matrix_size`` (rows, cols) and ``n_slices`` override the default
    coverage about the same centre (a small field of view is moved towards the spine so the
    bodies stay in it). ``lordosis_deg`` is the turn of the spine's tangent between the centres
    of T10 and S1 in the sagittal plane (positive = lordosis, negative = kyphosis);
    ``scoliosis_deg`` the same in the coronal plane (positive = convex to the right). Each body
    is oriented along the curve.

    Tissue options: ``marrow_pdff_pct`` (percent, 0-100) and ``marrow_r2s_per_s`` (1/s, at
    ``field_strength_t``) give the true core marrow values per level; levels not given are drawn
    from the seed (PDFF 30-70 %, R2* 40-80 1/s at 1.5 T, twice at 3 T). ``fractured`` maps a level
    to its height-loss fraction (0 < f <= 0.6); its marrow gets oedema (PDFF 10-30 points lower,
    drawn from the seed) unless the level's PDFF is given explicitly, in which case the given
    value is the as-built (post-oedema) value. ``cemented`` levels contain a cement void.
    ``lesion_level`` gets a focal low-fat sphere (8-12 mm). ``fracture_shape`` says where the
    height is lost: "crush" (uniformly; the spine shortens by the loss), "wedge" (at the anterior
    wall, none posteriorly) or "biconcave" (at the centre of both end plates, none at the rim);
    the height-loss fraction applies where the loss is deepest. ``marrow_heterogeneity_pct``
    (PDFF points, SD) adds a smooth random variation (wavelengths 10-30 mm) to the marrow PDFF
    of every body, with zero mean over each body's core, so the true values still hold on
    average over the core but a small ROI samples them with an error (0 = uniform marrow).

    Acquisition: ``snr`` is the marrow signal (water + fat, before bias) over the noise SD of
    each real/imaginary channel; None = noiseless. ``bias_field`` is the peak relative amplitude
    of a smooth multiplicative receive field (0 = none; must be < 0.9).
    ``include_echoes`` adds the six magnitude echo images ``echo_1`` .. ``echo_6`` (at the
    provenance echo times) to the study.
    ``slice_supersampling``: sub-samples per slice for partial volume (None = automatic, about
    one per millimetre, always odd).

    Transitional anatomy (opt-in; None = a normal spine, bit-identical to a spec without it):
    ``transitional="sacralised_L5"`` partly fuses L5 with the sacrum: a rudimentary L5/S1 disc
    (40 % of the drawn height) and an L5 body shaped half-way to S1; ``"lumbarised_S1"``
    separates S1 from the sacrum by a well-formed S1/S2 disc (85 % of the drawn L5/S1 disc),
    so six mobile lumbar-type segments lie above the sacrum, which begins at S2 (with a
    rudimentary S2/S3 disc and an unlabelled S3 below; the field of view then covers S2 too).
    Truth labels stay anatomical, numbered from above: the transitional body is still L5
    resp. S1.
    """

    seed: int = 0
    orientation: str = "sagittal"
    field_strength_t: float = 1.5
    slice_thickness_mm: float = 3.0
    in_plane_spacing_mm: float = 1.25
    matrix_size: tuple[int, int] | None = None
    n_slices: int | None = None
    marrow_pdff_pct: Mapping[str, float] | None = None
    marrow_r2s_per_s: Mapping[str, float] | None = None
    fractured: Mapping[str, float] = field(default_factory=dict)
    cemented: tuple[str, ...] = ()
    lesion_level: str | None = None
    snr: float | None = None
    bias_field: float = 0.0
    lordosis_deg: float = 30.0
    scoliosis_deg: float = 0.0
    oblique_deg: float = 0.0
    slice_supersampling: int | None = None
    fracture_shape: str = "crush"
    marrow_heterogeneity_pct: float = 0.0
    include_echoes: bool = False
    transitional: str | None = None

    def __post_init__(self) -> None:
        self._normalise()
        self._check_kinds()
        self._check_grid()
        self._check_levels()
        self._check_ranges()

    def _normalise(self) -> None:
        """Canonical spellings and read-only mappings (the spec is frozen: set once here)."""
        object.__setattr__(self, "orientation", str(self.orientation).strip().lower())
        object.__setattr__(self, "marrow_pdff_pct", _frozen_map(self.marrow_pdff_pct))
        object.__setattr__(self, "marrow_r2s_per_s", _frozen_map(self.marrow_r2s_per_s))
        object.__setattr__(self, "fractured", _frozen_map(self.fractured) or MappingProxyType({}))
        object.__setattr__(self, "cemented", tuple(str(c).strip().upper() for c in self.cemented))
        if self.lesion_level is not None:
            object.__setattr__(self, "lesion_level", str(self.lesion_level).strip().upper())
        object.__setattr__(self, "fracture_shape", str(self.fracture_shape).strip().lower())

    def _check_kinds(self) -> None:
        """Fracture shape, transitional anatomy, seed, orientation and field strength."""
        src = "PhantomSpec"
        if self.fracture_shape not in FRACTURE_SHAPES:
            raise InputError(
                f"{src}.fracture_shape",
                f"got {self.fracture_shape!r}; expected one of {FRACTURE_SHAPES}",
            )
        if self.transitional is not None:
            kinds = {k.lower(): k for k in TRANSITIONAL_KINDS}
            kind = kinds.get(str(self.transitional).strip().lower())
            if kind is None:
                raise InputError(
                    f"{src}.transitional",
                    f"got {self.transitional!r}; expected None (normal anatomy) or one of "
                    f"{TRANSITIONAL_KINDS}",
                )
            object.__setattr__(self, "transitional", kind)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise InputError(f"{src}.seed", f"got {self.seed!r}; expected an integer >= 0")
        if self.seed < 0:
            raise InputError(f"{src}.seed", f"got {self.seed}; expected an integer >= 0")
        if self.orientation not in ORIENTATIONS:
            raise InputError(
                f"{src}.orientation", f"got {self.orientation!r}; expected {ORIENTATIONS}"
            )
        if float(self.field_strength_t) not in FIELD_STRENGTHS_T:
            raise InputError(
                f"{src}.field_strength_t",
                f"got {self.field_strength_t}; expected one of {FIELD_STRENGTHS_T} T",
            )

    def _check_grid(self) -> None:
        """Slice thickness, pixel spacing, matrix size and slice count."""
        src = "PhantomSpec"
        if not 1.0 <= self.slice_thickness_mm <= 4.0:
            raise InputError(
                f"{src}.slice_thickness_mm", f"got {self.slice_thickness_mm}; expected 1-4 mm"
            )
        if not 0.3 <= self.in_plane_spacing_mm <= 4.0:
            raise InputError(
                f"{src}.in_plane_spacing_mm", f"got {self.in_plane_spacing_mm}; expected 0.3-4 mm"
            )
        if self.matrix_size is not None:
            ms = tuple(int(m) for m in self.matrix_size)
            if len(ms) != 2 or min(ms) < 8 or max(ms) > 2048:
                raise InputError(
                    f"{src}.matrix_size", f"got {self.matrix_size}; expected (rows, cols), 8-2048"
                )
            object.__setattr__(self, "matrix_size", ms)
        if self.n_slices is not None and not 1 <= int(self.n_slices) <= 1024:
            raise InputError(f"{src}.n_slices", f"got {self.n_slices}; expected 1-1024")

    def _check_levels(self) -> None:
        """Per-level values and the levels named as cemented or lesioned."""
        src = "PhantomSpec"
        for name, values, lo, hi in (
            ("marrow_pdff_pct", self.marrow_pdff_pct, 0.0, 100.0),
            ("marrow_r2s_per_s", self.marrow_r2s_per_s, 0.0, 1000.0),
            ("fractured", self.fractured, 0.0, 0.6),
        ):
            for level, value in (values or {}).items():
                if level not in VERTEBRAL_LEVELS:
                    raise InputError(
                        f"{src}.{name}", f"unknown level {level!r}; expected {VERTEBRAL_LEVELS}"
                    )
                if not lo < value <= hi if name == "fractured" else not lo <= value <= hi:
                    raise InputError(f"{src}.{name}[{level}]", f"got {value}; expected {lo}-{hi}")
        for level in (*self.cemented, *([self.lesion_level] if self.lesion_level else [])):
            if level not in VERTEBRAL_LEVELS:
                raise InputError(
                    f"{src}.cemented/lesion_level",
                    f"unknown level {level!r}; expected {VERTEBRAL_LEVELS}",
                )

    def _check_ranges(self) -> None:
        """Noise, shading, heterogeneity, spine shape, obliquity and slice supersampling."""
        src = "PhantomSpec"
        if self.snr is not None and not self.snr > 0:
            raise InputError(f"{src}.snr", f"got {self.snr}; expected > 0 or None (noiseless)")
        if not 0.0 <= self.bias_field < 0.9:
            raise InputError(f"{src}.bias_field", f"got {self.bias_field}; expected 0 <= a < 0.9")
        if not 0.0 <= self.marrow_heterogeneity_pct <= 10.0:
            raise InputError(
                f"{src}.marrow_heterogeneity_pct",
                f"got {self.marrow_heterogeneity_pct}; expected 0-10 PDFF points",
            )
        if not -60.0 <= self.lordosis_deg <= 80.0:
            raise InputError(f"{src}.lordosis_deg", f"got {self.lordosis_deg}; expected -60..80")
        if not -45.0 <= self.scoliosis_deg <= 45.0:
            raise InputError(f"{src}.scoliosis_deg", f"got {self.scoliosis_deg}; expected -45..45")
        if not -45.0 <= self.oblique_deg <= 45.0:
            raise InputError(f"{src}.oblique_deg", f"got {self.oblique_deg}; expected -45..45")
        if self.slice_supersampling is not None and not 1 <= self.slice_supersampling <= 15:
            raise InputError(
                f"{src}.slice_supersampling", f"got {self.slice_supersampling}; expected 1-15"
            )

    # The mappings are read-only proxies: give pickling and hashing plain equivalents so that a
    # spec can be sent to worker processes and used as a cache key.
    _MAPPING_FIELDS = ("marrow_pdff_pct", "marrow_r2s_per_s", "fractured")

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        for name in self._MAPPING_FIELDS:
            if state[name] is not None:
                state[name] = dict(state[name])
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            if name in self._MAPPING_FIELDS and value is not None:
                value = MappingProxyType(dict(value))  # type: ignore[call-overload]
            object.__setattr__(self, name, value)

    def __hash__(self) -> int:
        state = self.__getstate__()
        for name in self._MAPPING_FIELDS:
            if state[name] is not None:
                state[name] = tuple(sorted(state[name].items()))  # type: ignore[union-attr]
        return hash(tuple(sorted(state.items())))

    @property
    def field_factor(self) -> float:
        """R2* scale relative to 1.5 T (1.0 at 1.5 T, 2.0 at 3 T)."""
        return float(self.field_strength_t) / 1.5
