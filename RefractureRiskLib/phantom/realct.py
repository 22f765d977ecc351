"""IDEAL-IQ-like studies built from a REAL labelled CT (real anatomy, literature tissue values).

Every CT voxel is given a tissue from its Hounsfield units and the vertebra/body/disc masks, each
tissue a proton density, fat fraction and R2*; the result is resampled onto a random MRI grid
(sagittal 2D or axial 3D, slice partial volume, small rotation, cropped coverage) and the maps are
made with the phantom's own signal model (:mod:`.signal`: Rician noise, magnitude-discriminated
PDFF, noisy R2*, receive bias). Random draws come from independent streams of
``SeedSequence(seed)`` (0 tissue values, 1 pathology placement, 2 coil shading, 3 noise).

Masks (TotalSegmentator example CT, ``realspine/totalsegmentator``): whole vertebrae ids
26=S1 .. 33=T11, bodies 19=T12 .. 24=L5, body-vs-disc 1=bodies 2=discs. The S1 body is the S1
mask inside the "bodies" class. T11 is only 76 posterior-element voxels cut by the top edge: it
has no body, so it is bone but never a labelled level. Levels whose body touches the CT's edge
(T12 here) are always ``truncated``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import level_label
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.phantom.grid import rotation_matrix, subsample_points
from RefractureRiskLib.phantom.realct_case import (
    BodyGeometry,
    CaseFields,
    RealCtCase,
    body_geometry,
    load_realspine_case,
    load_tptbox_case,
)
from RefractureRiskLib.phantom.realct_paint import (
    VOID_R2S,
    Blob,
    TissueValues,
    draw_values,
    paint,
    place_blob,
    skin_y,
)
from RefractureRiskLib.phantom.signal import bias_field, echo_times_ms, synthesise_maps
from RefractureRiskLib.phantom.truth import (
    LabelledStudy,
    PhantomLevel,
    PhantomTruth,
    Tissue,
    synthetic_study,
)

#: The real-CT studies' public names: the case (:mod:`.realct_case`), its specs and studies.
__all__ = [
    "COVERAGES",
    "PATHOLOGIES",
    "PATHOLOGY_LEVELS",
    "TEST_SEEDS",
    "RealCtCase",
    "RealCtSpec",
    "load_realspine_case",
    "load_tptbox_case",
    "random_realct_spec",
    "realct_set",
    "study_from_ct",
]

PATHOLOGIES = ("none", "oedema", "cement", "haemangioma")
COVERAGES = ("full", "lower", "upper")
PATHOLOGY_LEVELS = ("L1", "L2", "L3", "L4")
TEST_SEEDS: tuple[int, ...] = tuple(range(2_000_000, 2_000_030))  # frozen: never tune on these


@dataclass(frozen=True)
class RealCtSpec:
    """Options of one real-CT study (validated; InputError names the bad field).

    Tissue values are drawn from ``seed``; ``marrow_pdff_pct`` (percent) overrides the
    patient's mean marrow PDFF. Grid: ``orientation`` "sagittal" (slices L->R, rows S->I,
    columns A->P) or "axial" (slices I->S, rows A->P, columns R->L); ``rotation_deg`` a rotation
    vector (degrees about R, A, S; norm <= 10) about the grid centre; ``coverage`` "full"
    (T12-S1), "lower" (L2-S1) or "upper" (T12-L3) plus ``si_shift_mm``; ``fov_mm`` the square
    in-plane A-P (sagittal) or in-plane (axial) field of view. ``snr``: marrow signal over noise
    SD per channel, None = noiseless. ``bias_amplitude``: coil shading (0-0.5).
    ``pathology`` at ``pathology_level``: "oedema" (marrow PDFF 10-30 points lower),
    "cement" (void blob), "haemangioma" (focal fat sphere). ``maps_only``: only pdff and r2s.
    ``marrow_texture_pct``: SD (PDFF points) of a smooth marrow variation (about 5 mm grain),
    zero mean over each body's core.
    """

    seed: int = 0
    orientation: str = "sagittal"
    field_strength_t: float = 1.5
    snr: float | None = None
    slice_thickness_mm: float = 4.0
    in_plane_spacing_mm: float = 1.5
    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    coverage: str = "full"
    si_shift_mm: float = 0.0
    fov_mm: float = 280.0
    bias_amplitude: float = 0.0
    pathology: str = "none"
    pathology_level: str | None = None
    maps_only: bool = False
    marrow_pdff_pct: float | None = None
    marrow_texture_pct: float = 0.0

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> InputError:
            return InputError(f"RealCtSpec.{name}", f"{getattr(self, name)!r}: {why}")

        checks = [
            ("seed", isinstance(self.seed, int) and self.seed >= 0, "a non-negative int"),
            ("orientation", self.orientation in ("sagittal", "axial"), "sagittal or axial"),
            ("field_strength_t", self.field_strength_t in (1.5, 3.0), "1.5 or 3.0"),
            ("snr", self.snr is None or 1 <= self.snr <= 1000, "None or 1-1000"),
            ("slice_thickness_mm", 1 <= self.slice_thickness_mm <= 10, "1-10 mm"),
            ("in_plane_spacing_mm", 0.5 <= self.in_plane_spacing_mm <= 3, "0.5-3 mm"),
            ("rotation_deg", len(self.rotation_deg) == 3, "three angles (deg)"),
            ("coverage", self.coverage in COVERAGES, f"one of {COVERAGES}"),
            ("si_shift_mm", abs(self.si_shift_mm) <= 40, "within +-40 mm"),
            ("fov_mm", 150 <= self.fov_mm <= 450, "150-450 mm"),
            ("bias_amplitude", 0 <= self.bias_amplitude <= 0.5, "0-0.5"),
            ("pathology", self.pathology in PATHOLOGIES, f"one of {PATHOLOGIES}"),
            ("marrow_texture_pct", 0 <= self.marrow_texture_pct <= 10, "0-10 PDFF points"),
            ("marrow_pdff_pct", self.marrow_pdff_pct is None or 5 <= self.marrow_pdff_pct <= 90,
             "None or 5-90 %"),
        ]  # fmt: skip
        for name, ok, why in checks:
            if not ok:
                raise bad(name, f"expected {why}")
        if float(np.linalg.norm(self.rotation_deg)) > 10:
            raise bad("rotation_deg", "expected a rotation of at most 10 degrees")
        wants_level = self.pathology != "none"
        if wants_level != (self.pathology_level in PATHOLOGY_LEVELS):
            raise bad("pathology_level", f"expected one of {PATHOLOGY_LEVELS} iff a pathology")


def random_realct_spec(rng: np.random.Generator, seed: int) -> RealCtSpec:
    """A random spec: orientation (70 % sagittal), field, SNR 5-50 (10 % noiseless), slice
    3-6 mm, pixel 1-2 mm (axial 1.2-2), rotation up to 8 degrees, coverage and FOV, coil shading,
    pathology (55 % none), maps-only (20 %)."""
    sag = bool(rng.random() < 0.7)
    axis = rng.normal(size=3)
    rot = axis / np.linalg.norm(axis) * rng.uniform(0.0, 8.0)
    path = str(rng.choice(PATHOLOGIES, p=[0.55, 0.15, 0.15, 0.15]))
    return RealCtSpec(
        seed=int(seed),
        orientation="sagittal" if sag else "axial",
        field_strength_t=float(rng.choice([1.5, 3.0])),
        snr=None if rng.random() < 0.1 else float(np.exp(rng.uniform(np.log(5), np.log(50)))),
        slice_thickness_mm=float(rng.uniform(3.0, 6.0)),
        in_plane_spacing_mm=float(rng.uniform(1.0, 2.0) if sag else rng.uniform(1.2, 2.0)),
        rotation_deg=(float(rot[0]), float(rot[1]), float(rot[2])),
        coverage=str(rng.choice(COVERAGES, p=[0.5, 0.3, 0.2])),
        si_shift_mm=float(rng.uniform(-15.0, 15.0)),
        fov_mm=float(rng.uniform(220.0, 320.0) if sag else rng.uniform(300.0, 380.0)),
        bias_amplitude=float(rng.uniform(0.0, 0.3)),
        pathology=path,
        pathology_level=None if path == "none" else str(rng.choice(PATHOLOGY_LEVELS)),
        maps_only=bool(rng.random() < 0.2),
        marrow_texture_pct=float(rng.uniform(0.0, 4.0)),
    )


def realct_set(name: str, n: int | None = None) -> list[RealCtSpec]:
    """Specs of a named set: "dev" (seeds 0..n-1, default 50; tune on these) or "test" (the
    frozen :data:`TEST_SEEDS`, 30 seeds from 2_000_000, never for tuning; n <= 30 takes the
    first n)."""
    if name == "dev":
        seeds: tuple[int, ...] = tuple(range(50 if n is None else n))
    elif name == "test":
        if n is not None and not 0 <= n <= len(TEST_SEEDS):
            raise InputError("realct_set n", f"{n}: the test set has {len(TEST_SEEDS)} seeds")
        seeds = TEST_SEEDS[: len(TEST_SEEDS) if n is None else n]
    else:
        raise InputError("realct_set name", f"{name!r}; expected 'dev' or 'test'")
    return [random_realct_spec(np.random.default_rng(s), s) for s in seeds]


def _grid(
    case: RealCtCase, f: CaseFields, spec: RealCtSpec, geo: Mapping[str, BodyGeometry]
) -> tuple[npt.NDArray[np.float64], tuple[int, int, int], float]:
    """IJK-to-RAS matrix, shape (nk, nj, ni) and posterior skin y (mm) of the MRI grid."""
    z_lo = {n: float(g.points[:, 2].min()) - 1.5 for n, g in geo.items()}
    z_hi = {n: float(g.points[:, 2].max()) + 1.5 for n, g in geo.items()}
    top, bottom = max(z_hi.values()), min(z_lo.values())
    lo, hi = {
        "full": (bottom - 25.0, top + 25.0),
        "lower": (bottom - 25.0, z_hi.get("L2", top) + 15.0),
        "upper": (z_lo.get("L3", bottom) - 15.0, top + 25.0),
    }[spec.coverage]
    x_mid = float(np.mean([g.centre[0] for g in geo.values()]))
    lumbar = [g.centre[2] for n, g in geo.items() if n.startswith("L")]
    y_back, y_front = skin_y(case, f, x_mid, np.linspace(min(lumbar), max(lumbar), 5))
    sag, fov = spec.orientation == "sagittal", spec.fov_mm
    sp, thk = spec.in_plane_spacing_mm, spec.slice_thickness_mm
    y0 = y_back - 15.0 if sag else (y_back + y_front - fov) / 2  # sagittal: from behind the back
    x_half = 48.0 if sag else fov / 2
    z_shift = spec.si_shift_mm
    ranges = np.array(
        [(x_mid - x_half, x_mid + x_half), (y0, y0 + fov), (lo + z_shift, hi + z_shift)]
    )
    # nothing outside the CT can be imaged: the grid stops at its edges
    corners = [[-0.5] * 3, np.array(case.ct_hu.shape[::-1]) - 0.5]
    box = np.sort(case.ct_hu.ijk_to_ras_points(corners), axis=0)
    ranges = np.clip(ranges, box[0][:, None], box[1][:, None])
    centre = ranges.mean(axis=1)
    if sag:  # columns A->P, rows S->I, slices L->R
        dirs = np.column_stack([(0.0, -1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)])
        axes = (1, 2, 0)
    else:  # columns R->L, rows A->P, slices I->S
        dirs = np.column_stack([(-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0)])
        axes = (0, 1, 2)
    steps = zip(axes, (sp, sp, thk), strict=True)
    ni, nj, nk = (max(round(float(np.ptp(ranges[a])) / step), 1) for a, step in steps)
    angle = float(np.linalg.norm(spec.rotation_deg))
    if angle > 0:
        dirs = rotation_matrix(spec.rotation_deg, angle) @ dirs
    mat = np.eye(4)
    mat[:3, :3] = dirs * np.array([sp, sp, thk])[np.newaxis, :]
    mat[:3, 3] = centre - mat[:3, :3] @ ((np.array([ni, nj, nk], float) - 1) / 2)
    return mat, (nk, nj, ni), y_back


def _bin(value: float | None, edges: tuple[float, ...], unit: str = "") -> str:
    if value is None:
        return "noiseless"
    for a, b in itertools.pairwise(edges):
        if a <= value < b:
            return f"{a:g}-{b:g}{unit}"
    return f"<{edges[0]:g}{unit}" if value < edges[0] else f">{edges[-1]:g}{unit}"


def study_from_ct(case: RealCtCase, spec: RealCtSpec) -> LabelledStudy:
    """An IDEAL-IQ-like study of ``case``'s real anatomy under ``spec`` (deterministic per seed).

    Maps: water, fat, in_phase, out_phase (signal units, marrow water + fat = 1000 before
    shading), pdff (%), r2s (1/s at the spec's field), all on one grid (only pdff and r2s when
    ``maps_only``). Truth: body labels (T10=1 .. S1=9, a voxel labelled when at least half of its
    slice sub-samples are in that body), tissue at voxel centres, core (every sub-sample core
    marrow of that body: >= 3 mm deep, outside cement and lesion), one PhantomLevel per body in
    the grid with its as-built core values (oedema included).
    """
    if spec.pathology_level is not None and spec.pathology_level not in case.levels:
        has = ", ".join(case.levels)
        raise InputError(
            "RealCtSpec.pathology_level", f"{spec.pathology_level} not in {case.name} ({has})"
        )
    f = case.fields
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(5)]
    values = draw_values(case, spec, streams[0], streams[4])
    blob = place_blob(case, f, spec, streams[1])
    geo = body_geometry(case)
    mat, shape, y_back = _grid(case, f, spec, geo)
    water, fat, r2, tissue, core, labels = _render(case, values, blob, spec, mat, shape)
    if spec.field_strength_t == 3.0:
        r2 *= 2.0
    nk, nj, ni = shape
    x, y, z = subsample_points(mat, 1, (0, nk), (0, nj), (0, ni))
    shading = bias_field(x, y, z, spec.bias_amplitude, streams[2])
    shading *= 1.0 - spec.bias_amplitude * np.clip((y - y_back) / 250.0, 0.0, 1.0)  # spine coil
    maps = synthesise_maps(water, fat, r2, spec.field_strength_t, shading, spec.snr, streams[3])
    if spec.maps_only:
        maps = {kind: maps[kind] for kind in ("pdff", "r2s")}
    study = synthetic_study(
        maps,
        mat,
        generator="RefractureRisk real-CT phantom",
        source=f"RefractureRiskLib.phantom.realct seed {spec.seed} from real CT {case.name}",
        field_strength_t=spec.field_strength_t,
        echo_times_ms=echo_times_ms(spec.field_strength_t),
        snr=spec.snr,
        description="synthetic (real CT anatomy)",
    )
    label_vol = Volume(labels, mat)
    levels = _truth_levels(case, spec, values, blob, geo, label_vol)
    truth = PhantomTruth(label_vol, levels, Volume(tissue, mat), Volume(core, mat))
    conditions = _conditions(spec, [lv.level for lv in levels])
    return LabelledStudy(f"realct-{case.name}-{spec.seed}", study, truth, conditions)


def _render(
    case: RealCtCase,
    values: TissueValues,
    blob: Blob | None,
    spec: RealCtSpec,
    mat: npt.NDArray,
    shape: tuple[int, int, int],
) -> tuple[npt.NDArray, ...]:
    """Water, fat (proton density), R2* (1/s at 1.5 T), tissue, core and body labels on the grid
    ``mat``/``shape``, each voxel the mean over its slice sub-samples (slice partial volume)."""
    f = case.fields
    nk, nj, ni = shape
    n_sub = math.ceil(spec.slice_thickness_mm / 1.5)
    n_sub += 1 - n_sub % 2
    water, fat, r2 = (np.zeros(shape, np.float32) for _ in range(3))
    tissue, core = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    labels = np.zeros(shape, np.int16)
    for k in range(nk):
        xyz = subsample_points(mat, n_sub, (k * n_sub, (k + 1) * n_sub), (0, nj), (0, ni))
        pd, ff, rr, tis, lab = paint(case, f, values, blob, spec, xyz)
        fat_pd = pd * ff
        water[k], fat[k] = (pd - fat_pd).mean(axis=0), fat_pd.mean(axis=0)
        pd_sum = pd.sum(axis=0)
        r2[k] = np.where(pd_sum > 0, (pd * rr).sum(axis=0) / np.maximum(pd_sum, 1e-6), VOID_R2S)
        tissue[k] = tis[n_sub // 2]
        for label in values.level_ff:
            labels[k][2 * (lab == label).sum(axis=0) >= n_sub] = label
        core[k] = ((tis == Tissue.MARROW_CORE) & (lab == labels[k])).all(axis=0) & (labels[k] > 0)
    return water, fat, r2, tissue, core, labels


def _conditions(spec: RealCtSpec, named: list[str]) -> dict[str, str]:
    """The conditions a study was made under (the evaluation table is broken down by them)."""
    return {
        "orientation": spec.orientation,
        "field": "3T" if spec.field_strength_t == 3.0 else "1.5T",
        "snr": _bin(spec.snr, (5.0, 10.0, 20.0, 50.0)),
        "slice": _bin(spec.slice_thickness_mm, (3.0, 4.0, 6.0 + 1e-9), "mm"),
        "maps": "pdff+r2s" if spec.maps_only else "all",
        "coverage": f"{named[0]}-{named[-1]}" if named else "none",
        "pathology": spec.pathology,
        "anatomy": "realct",
    }


def _vec(values: npt.ArrayLike) -> tuple[float, float, float]:
    x, y, z = (float(c) for c in np.asarray(values, float))
    return x, y, z


def _truth_levels(
    case: RealCtCase,
    spec: RealCtSpec,
    values: TissueValues,
    blob: Blob | None,
    geo: Mapping[str, BodyGeometry],
    labels: Volume,
) -> tuple[PhantomLevel, ...]:
    out = []
    for name, g in geo.items():
        label = level_label(name)
        count = int(np.count_nonzero(labels.array == label))
        if count == 0:
            continue
        ijk = labels.ras_to_ijk_points(g.points)
        inside = np.all((ijk >= -0.5) & (ijk <= np.array(labels.shape[::-1]) - 0.5), axis=1)
        has_blob = blob is not None and blob.label == label
        lesion = has_blob and spec.pathology == "haemangioma"
        width, depth, height = g.size_mm
        out.append(
            PhantomLevel(
                level=name,
                label=label,
                marrow_pdff_pct=100.0 * values.level_ff[label],
                marrow_r2s_per_s=values.level_r2[label]
                * (2.0 if spec.field_strength_t == 3 else 1.0),
                height_mm=height,
                width_mm=width,
                depth_mm=depth,
                body_volume_ml=count * labels.voxel_volume_ml,
                centre_ras=_vec(g.centre),
                fractured=False,
                height_loss_frac=0.0,
                cemented=has_blob and spec.pathology == "cement",
                lesion=lesion,
                analytic_volume_ml=len(g.points) * case.bodies.voxel_volume_ml,
                nominal_height_mm=height,
                oedema_pdff_drop_pct=values.oedema_pct if name == spec.pathology_level else 0.0,
                rim_pdff_drop_pct=100.0 * values.rim_drop,
                superior_ras=_vec(g.superior),
                anterior_ras=_vec(g.anterior),
                lesion_centre_ras=_vec(blob.centre) if lesion and blob else None,
                lesion_radius_mm=blob.radius_mm if lesion and blob else 0.0,
                truncated=name in case.edge_levels or float(inside.mean()) < 0.9,
            )
        )
    return tuple(out)
