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
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.levels import level_from_label, level_label
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.io.images import read_image
from RefractureRiskLib.phantom.grid import rotation_matrix, subsample_points
from RefractureRiskLib.phantom.signal import bias_field, echo_times_ms, synthesise_maps
from RefractureRiskLib.phantom.truth import (
    LabelledStudy,
    PhantomLevel,
    PhantomTruth,
    Tissue,
    synthetic_study,
)

WHOLE_IDS: Mapping[int, str] = MappingProxyType(
    {26: "S1", 27: "L5", 28: "L4", 29: "L3", 30: "L2", 31: "L1", 32: "T12", 33: "T11"}
)
BODY_IDS: Mapping[int, str] = MappingProxyType(
    {19: "T12", 20: "L1", 21: "L2", 22: "L3", 23: "L4", 24: "L5"}
)
TS_DIR = "totalsegmentator"
CORE_DEPTH_MM = 3.0  # core marrow: at least this deep inside the body surface
CORTEX_MM = 1.0  # cortical shell: no signal
PATHOLOGIES = ("none", "oedema", "cement", "haemangioma")
COVERAGES = ("full", "lower", "upper")
PATHOLOGY_LEVELS = ("L1", "L2", "L3", "L4")
TEST_SEEDS: tuple[int, ...] = tuple(range(2_000_000, 2_000_030))  # frozen: never tune on these
AIR_HU = -1000.0
VOID_R2S = 800.0  # true R2* of signal voids (gas, cortex, cement) at 1.5 T, 1/s
# Soft tissue by HU (outside the spine masks): proton density (marrow = 1), fat fraction, R2* at
# 1.5 T. "F" is the patient's fat PDFF, "M" muscle/organ, "P" pelvic/femoral marrow (per seed).
_HU_KNOTS = np.array([-1000, -500, -190, -60, -5, 20, 35, 120, 180, 400, 800], np.float32)
_PD_KNOTS = np.array([0, 0, 1, 1, 1, 1, 0.75, 0.75, 0.85, 0.5, 0], np.float32)
_R2_KNOTS = np.array([800, 800, 25, 25, 8, 8, 30, 30, 90, 120, 300], np.float32)


@dataclass(frozen=True, eq=False)
class RealCtCase:
    """A real CT with its masks, on the CT grid (arrays [k, j, i], RAS mm).

    ``ct_hu``: Hounsfield units. ``bodies``: int16 vertebral bodies with product labels
    (:func:`level_label`); ``vertebrae``: int16 whole vertebrae (body + posterior elements), same
    labels; ``discs``: uint8, 1 = disc. ``whole_ids``/``body_ids``: level name of each id in the
    source masks. ``edge_levels``: bodies touching the CT edge (always truncated). ``fields``:
    what generation samples (HU without the table, signed distances, nearest body).
    """

    name: str
    source: str
    ct_hu: Volume
    bodies: Volume
    vertebrae: Volume
    discs: Volume
    whole_ids: Mapping[int, str]
    body_ids: Mapping[int, str]
    edge_levels: tuple[str, ...]
    fields: _Fields = field(repr=False)

    @property
    def levels(self) -> tuple[str, ...]:
        """Levels that have a body in the CT, cranial first."""
        return tuple(level_from_label(int(v)) for v in np.unique(self.bodies.array) if v > 0)


def load_realspine_case(root: str | Path) -> RealCtCase:
    """Read the TotalSegmentator example CT and its masks from ``root`` (``realspine`` folder or
    its ``totalsegmentator`` subfolder); InputError names a missing file."""
    folder = Path(root)
    folder = folder / TS_DIR if (folder / TS_DIR).is_dir() else folder
    ct = read_image(folder / "example_ct.nii.gz")
    whole = read_image(folder / "example_ct_vertebrae_T11-S1_pred.nii.gz").array
    body = read_image(folder / "example_ct_vertebral_bodies_T12-L5_pred.nii.gz").array
    bvd = read_image(folder / "example_ct_vertebrae_body_vs_disc_pred.nii.gz").array
    for arr, what in ((whole, "vertebrae"), (body, "bodies"), (bvd, "body_vs_disc")):
        if arr.shape != ct.shape:
            raise InputError(folder, f"{what} mask shape {arr.shape} != CT shape {ct.shape}")
    vert = np.zeros(ct.shape, np.int16)
    bodies = np.zeros(ct.shape, np.int16)
    for mid, name in WHOLE_IDS.items():
        vert[whole == mid] = level_label(name)
    for mid, name in BODY_IDS.items():
        bodies[body == mid] = level_label(name)
    for name in set(WHOLE_IDS.values()) - set(BODY_IDS.values()):  # S1 (and T11: empty)
        bodies[(vert == level_label(name)) & (bvd == 1) & (bodies == 0)] = level_label(name)
    return _make_case("ts-example-ct", ct, vert, bodies, bvd == 2, WHOLE_IDS, BODY_IDS, folder)


def load_tptbox_case(root: str | Path) -> RealCtCase:
    """Read the TPTBox CT crop around L3 (1.5 mm, P-I-R; VerSe ids 21=L2 22=L3 23=L4, L2 and L4
    cut by the crop) from ``root`` (``realspine`` or its ``tptbox`` subfolder). Bodies are the
    sub-region classes 49 (corpus border) and 50 (corpus). The crop has no disc mask: a disc is
    soft tissue (20-150 HU) outside the vertebrae within 8 mm of two neighbouring bodies."""
    folder = Path(root)
    folder = folder / "tptbox" if (folder / "tptbox").is_dir() else folder
    ct = read_image(folder / "sub-ct_label-22_ct.nii.gz")
    verse = read_image(folder / "sub-ct_seg-vert_label-22_msk.nii.gz").array
    subreg = read_image(folder / "sub-ct_seg-subreg_label-22_msk.nii.gz").array
    ids = {19 + n: f"L{n}" for n in range(1, 6)}  # VerSe ids: 19 = T12, 20 = L1 .. 24 = L5
    vert = np.zeros(ct.shape, np.int16)
    for mid, name in ids.items():
        vert[verse == mid] = level_label(name)
    bodies = np.where(np.isin(subreg, (49, 50)), vert, 0).astype(np.int16)
    sp = ct.spacing_mm[::-1]
    near = [ndi.distance_transform_edt(bodies != v, sampling=sp) for v in np.unique(bodies) if v]
    close = [d < 8.0 for d in near]
    between = np.any([a & b for a, b in itertools.pairwise(close)], axis=0)
    discs = between & (vert == 0) & (ct.array > 20) & (ct.array < 150)
    body_ids = {mid: n for mid, n in ids.items() if np.any(bodies == level_label(n))}
    return _make_case("tptbox-ct-L3", ct, vert, bodies, discs, ids, body_ids, folder)


def _make_case(
    name: str,
    ct: Volume,
    vert: npt.NDArray,
    bodies: npt.NDArray,
    discs: npt.NDArray,
    whole_ids: Mapping[int, str],
    body_ids: Mapping[int, str],
    folder: Path,
) -> RealCtCase:
    border = np.ones(ct.shape, bool)
    border[1:-1, 1:-1, 1:-1] = False
    edge = tuple(level_from_label(int(v)) for v in np.unique(bodies[border]) if v > 0)
    mat, vert = ct.ijk_to_ras, np.maximum(vert, bodies)
    return RealCtCase(
        name=name,
        source=f"{folder} ({name}: public test CT, Apache-2.0; not a patient)",
        ct_hu=Volume(ct.array.astype(np.float32), mat),
        bodies=Volume(bodies, mat),
        vertebrae=Volume(vert, mat),
        discs=Volume(discs.astype(np.uint8), mat),
        whole_ids=MappingProxyType(dict(whole_ids)),
        body_ids=MappingProxyType(dict(body_ids)),
        edge_levels=edge,
        fields=_case_fields(ct, bodies, discs, vert),
    )


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


@dataclass(frozen=True, eq=False)
class _Fields:
    """Per-case fields on the CT grid padded by one voxel of "outside": ``stack`` [k, j, i, 4]
    holds lightly smoothed HU and the signed distances (mm, > 0 inside) to the body, disc and
    whole-vertebra surfaces; ``nearest_body`` the label of the nearest body voxel."""

    stack: npt.NDArray[np.float32]
    nearest_body: npt.NDArray[np.int16]
    ras_to_kji: npt.NDArray[np.float64]  # 4x4: RAS (x, y, z, 1) -> padded (k, j, i, 1)

    def sample(self, kji: npt.NDArray, extra: npt.NDArray | None = None) -> tuple[npt.NDArray, ...]:
        """Trilinear HU, sdf_body, sdf_disc, sdf_vert, nearest body label and ``extra`` (a padded
        CT-grid array; zeros without it) at padded CT indices ``kji`` (3, n); far outside the CT
        gives air and "outside"."""
        hi = np.array(self.stack.shape[:3], np.float32)[:, None] - 1.001
        c = np.clip(kji, 0, hi)
        base = c.astype(np.intp)
        w = (c - base).astype(np.float32)
        nj, ni = self.stack.shape[1:3]
        flat = (base[0] * nj + base[1]) * ni + base[2]
        table = self.stack.reshape(-1, 4)
        out = np.zeros((flat.size, 5), np.float32)
        for dk, dj, di in itertools.product((0, 1), repeat=3):
            wt = (
                (w[0] if dk else 1 - w[0]) * (w[1] if dj else 1 - w[1]) * (w[2] if di else 1 - w[2])
            )
            idx = flat + (dk * nj + dj) * ni + di
            out[:, :4] += table[idx] * wt[:, None]
            if extra is not None:
                out[:, 4] += extra.ravel()[idx] * wt
        near = np.rint(c).astype(np.intp)
        label = self.nearest_body[near[0], near[1], near[2]]
        return out[:, 0], out[:, 1], out[:, 2], out[:, 3], label, out[:, 4]


def _signed_distance_mm(mask: npt.NDArray[np.bool_], spacing_kji: npt.NDArray) -> npt.NDArray:
    # zero half-way between voxel centres in and out; smoothed so the surface is not blocky
    half = float(np.mean(spacing_kji)) / 2
    inside = ndi.distance_transform_edt(mask, sampling=spacing_kji) - half
    outside = ndi.distance_transform_edt(~mask, sampling=spacing_kji) - half
    return ndi.gaussian_filter(np.where(mask, inside, -outside), 0.7).astype(np.float32)


def _case_fields(ct: Volume, bodies: npt.NDArray, discs: npt.NDArray, vert: npt.NDArray) -> _Fields:
    sp = ct.spacing_mm[::-1]
    _, idx = ndi.distance_transform_edt(bodies == 0, return_indices=True)
    hu = ct.array.astype(np.float32)
    parts, _ = ndi.label(hu > -400)  # the patient is the largest part; the table is not
    sizes = np.bincount(parts.ravel())
    sizes[0] = 0
    hu[(parts > 0) & (parts != sizes.argmax())] = AIR_HU
    layers = [ndi.gaussian_filter(hu, 0.6)] + [
        _signed_distance_mm(m > 0, sp) for m in (bodies, discs, vert)
    ]
    cvals = (AIR_HU, -99.0, -99.0, -99.0)
    padded = [np.pad(a, 1, constant_values=v) for a, v in zip(layers, cvals, strict=True)]
    to_kji = np.eye(4)[[2, 1, 0, 3]] @ ct.ras_to_ijk
    to_kji[:3, 3] += 1.0  # padding
    near = np.pad(bodies[tuple(idx)].astype(np.int16), 1)
    return _Fields(np.stack(padded, axis=-1).astype(np.float32), near, to_kji)


def _to_kji(f: _Fields, xyz: tuple) -> npt.NDArray:
    m = f.ras_to_kji.astype(np.float32)
    x, y, z = (np.ravel(c).astype(np.float32) for c in xyz)
    return np.stack([m[r, 0] * x + m[r, 1] * y + m[r, 2] * z + m[r, 3] for r in range(3)])


@dataclass(frozen=True)
class _Values:
    """Tissue values drawn from the seed (PDFF as fractions here, R2* in 1/s at 1.5 T)."""

    level_ff: Mapping[int, float]  # core marrow per body label (after oedema)
    level_r2: Mapping[int, float]
    oedema_pct: float
    rim_drop: float
    fat_ff: float
    muscle_ff: float
    disc_ff: float
    pelvis_ff: float
    lesion_ff: float
    texture: npt.NDArray | None  # marrow PDFF offsets (fraction) on the padded CT grid


def _draw_values(
    case: RealCtCase, spec: RealCtSpec, rng: np.random.Generator, tex_rng: np.random.Generator
) -> _Values:
    mean = spec.marrow_pdff_pct if spec.marrow_pdff_pct is not None else rng.uniform(30, 70)
    r2 = rng.uniform(60.0, 120.0)
    ff, r2s = {}, {}
    oedema = rng.uniform(10.0, 30.0)  # always drawn: pathology never changes the other values
    oedema = oedema if spec.pathology == "oedema" else 0.0
    for name in case.levels:
        lab = level_label(name)
        pct = mean + 1.0 * (lab - level_label("L3")) + rng.normal(0.0, 2.0)  # fattier caudally
        pct = float(np.clip(pct, 8.0, 90.0))
        if name == spec.pathology_level and oedema:
            oedema = min(oedema, pct - 5.0)
            pct -= oedema
        ff[lab], r2s[lab] = pct / 100.0, float(r2 * (1.0 + rng.normal(0.0, 0.08)))
    return _Values(
        level_ff=ff,
        level_r2=r2s,
        oedema_pct=float(oedema),
        rim_drop=rng.uniform(4.0, 8.0) / 100.0,
        fat_ff=rng.uniform(0.85, 0.95),
        muscle_ff=rng.uniform(0.02, 0.10),
        disc_ff=rng.uniform(0.0, 0.05),
        pelvis_ff=float(np.clip(mean / 100 + rng.uniform(0.05, 0.2), 0.5, 0.9)),
        lesion_ff=rng.uniform(0.75, 0.92),
        texture=_texture(case, spec.marrow_texture_pct, tex_rng),
    )


def _texture(case: RealCtCase, sd_pct: float, rng: np.random.Generator) -> npt.NDArray | None:
    """Smooth marrow PDFF variation (fraction; padded CT grid): SD ``sd_pct`` points over the
    body cores, zero mean over each body's core so the level values hold on average."""
    if sd_pct <= 0:
        return None
    noise = ndi.gaussian_filter(rng.standard_normal(case.ct_hu.shape).astype(np.float32), 1.5)
    core = case.fields.stack[1:-1, 1:-1, 1:-1, 1] >= CORE_DEPTH_MM
    for v in np.unique(case.bodies.array[core]):
        part = core & (case.bodies.array == v)
        noise[case.bodies.array == v] -= noise[part].mean()
    noise *= sd_pct / 100.0 / max(float(noise[core].std()), 1e-6)
    return np.pad(noise, 1)


@dataclass(frozen=True)
class _Blob:
    """Cement or haemangioma: a sphere (RAS mm) inside one body."""

    label: int
    centre: npt.NDArray[np.float64]
    radius_mm: float


def _place_blob(case: RealCtCase, f: _Fields, spec: RealCtSpec, rng: np.random.Generator):
    if spec.pathology not in ("cement", "haemangioma") or spec.pathology_level is None:
        return None
    lab = level_label(spec.pathology_level)
    depth = np.where(case.bodies.array == lab, f.stack[1:-1, 1:-1, 1:-1, 1], -1.0)
    deepest = float(depth.max())
    radius = rng.uniform(7.0, 10.0) if spec.pathology == "cement" else rng.uniform(4.0, 7.0)
    radius = min(radius, deepest - 2.0)
    cement = spec.pathology == "cement"
    ijk = np.argwhere(depth >= (deepest - 3.0 if cement else min(radius + 3.0, deepest - 1.0)))
    ras = case.ct_hu.ijk_to_ras_points(ijk[:, ::-1])
    centre = ras.mean(axis=0) if cement else ras[rng.integers(len(ras))]
    return _Blob(lab, centre + rng.uniform(-2, 2, 3), float(radius))


def _paint(
    case: RealCtCase, f: _Fields, v: _Values, blob: _Blob | None, spec: RealCtSpec, xyz: tuple
) -> tuple[npt.NDArray, ...]:
    """Proton density (marrow = 1), fat fraction, R2* (1/s at 1.5 T), tissue and body label at
    RAS points ``xyz`` (arrays of one shape)."""
    shape = xyz[0].shape
    hu, sb, sd, sv, near, texture = f.sample(_to_kji(f, xyz), v.texture)
    pd = np.interp(hu, _HU_KNOTS, _PD_KNOTS).astype(np.float32)
    ff_knots = [v.fat_ff] * 4 + [0.01, 0.01] + [v.muscle_ff] * 2 + [v.pelvis_ff] * 3
    ff = np.interp(hu, _HU_KNOTS, np.array(ff_knots, np.float32)).astype(np.float32)
    r2 = np.interp(hu, _HU_KNOTS, _R2_KNOTS).astype(np.float32)
    tissue = np.select(
        [hu < -500, hu < -30, hu < 20, hu < 150, hu < 400],
        [
            Tissue.AIR,
            Tissue.SUBCUTANEOUS_FAT,
            Tissue.CSF,
            Tissue.SOFT_TISSUE,
            Tissue.OTHER_VERTEBRA,
        ],
        Tissue.CORTEX,
    ).astype(np.uint8)

    def put(mask: npt.NDArray, t: int, p: float, fat: object, rr: object) -> None:
        sel = [a[mask] if isinstance(a, np.ndarray) else a for a in (fat, rr)]
        tissue[mask], pd[mask], ff[mask], r2[mask] = t, p, sel[0], sel[1]

    # bone next to the spine surface and the shell of the posterior elements: cortex, no signal
    put((sv > -2.0) & (sv <= 0) & (hu > 150), Tissue.CORTEX, 0, 0, VOID_R2S)
    post = sv > 0
    mean_ff = float(np.mean(list(v.level_ff.values())))
    mean_r2 = float(np.mean(list(v.level_r2.values())))
    put(post, Tissue.POSTERIOR_ELEMENT, 0.8, min(mean_ff + 0.05, 0.95), 1.2 * mean_r2)
    put(post & ((sv < CORTEX_MM) | (hu > 450)), Tissue.CORTEX, 0, 0, VOID_R2S)
    put((sd > 0) & (sb <= 0), Tissue.DISC, 0.9, v.disc_ff, 15.0)
    body = (sb > 0) & (near > 0)
    lab = np.where(body, near, 0).astype(np.int16)
    core_ff = np.zeros_like(ff)
    core_r2 = np.zeros_like(r2)
    for label, value in v.level_ff.items():
        core_ff[lab == label], core_r2[lab == label] = value, v.level_r2[label]
    core_ff += np.where(lab > 0, texture, 0)
    closeness = np.clip((CORE_DEPTH_MM - sb) / (CORE_DEPTH_MM - CORTEX_MM), 0.0, 1.0)
    rim = body & (sb < CORE_DEPTH_MM)
    put(body, Tissue.MARROW_CORE, 1.0, core_ff, core_r2)
    put(rim, Tissue.MARROW_RIM, 1.0, np.clip(core_ff - v.rim_drop * closeness, 0, 1),
        core_r2 * (1 + 0.3 * closeness))  # fmt: skip
    put(body & (sb < CORTEX_MM), Tissue.CORTEX, 0, 0, VOID_R2S)
    if blob is not None:
        d2 = sum((np.ravel(c) - c0) ** 2 for c, c0 in zip(xyz, blob.centre, strict=True))
        inside = (lab == blob.label) & (d2 < blob.radius_mm**2)
        if spec.pathology == "cement":
            put(inside, Tissue.CEMENT, 0, 0, VOID_R2S)
        else:
            put(inside, Tissue.LESION, 1.0, v.lesion_ff, 0.6 * v.level_r2[blob.label])
    return tuple(a.reshape(shape) for a in (pd, ff, r2, tissue, lab))


def _skin_y(case: RealCtCase, f: _Fields, x_mid: float, zs: npt.NDArray) -> tuple[float, float]:
    """(posterior, anterior) skin y (RAS mm) on the line through the spine at heights ``zs``."""
    lo, hi = np.sort(case.ct_hu.ijk_to_ras_points([[0, 0, 0], np.array(case.ct_hu.shape[::-1])]), 0)
    ys = np.arange(lo[1], hi[1], 2.0)
    yy, zz = np.meshgrid(ys, zs)
    hu = f.sample(_to_kji(f, (np.full(yy.shape, x_mid), yy, zz)))[0].reshape(yy.shape)
    inside = hu > -300
    back = [ys[r.argmax()] for r in inside if r.any()]
    front = [ys[len(r) - 1 - r[::-1].argmax()] for r in inside if r.any()]
    return float(np.median(back)), float(np.median(front))


@dataclass(frozen=True)
class _BodyGeometry:
    points: npt.NDArray[np.float64]  # RAS of the CT mask voxel centres
    centre: npt.NDArray[np.float64]
    superior: npt.NDArray[np.float64]
    anterior: npt.NDArray[np.float64]
    size_mm: tuple[float, float, float]  # width, depth, height


def _body_geometry(case: RealCtCase) -> dict[str, _BodyGeometry]:
    """Per level: centre, superior axis along the spine line, anterior axis (PCA: the shorter
    in-plane axis, pointing +A), extents (mm) of the CT body mask along the three axes."""
    vol = case.bodies
    pts = {n: vol.ijk_to_ras_points(np.argwhere(vol.array == level_label(n))[:, ::-1])
           for n in case.levels}  # fmt: skip
    cen = [pts[n].mean(axis=0) for n in case.levels]
    out = {}
    voxel = float(np.mean(vol.spacing_mm))
    for i, name in enumerate(case.levels):
        up = cen[max(i - 1, 0)] - cen[min(i + 1, len(cen) - 1)]
        up /= np.linalg.norm(up)
        rel = pts[name] - cen[i]
        flat = rel - np.outer(rel @ up, up)
        _, evecs = np.linalg.eigh(np.cov(flat.T))
        ant = evecs[:, 1] if abs(evecs[:, 1] @ up) < 0.5 else evecs[:, 0]
        ant = ant - (ant @ up) * up
        ant = ant / np.linalg.norm(ant) * (1 if ant[1] >= 0 else -1)
        right = np.cross(ant, up)
        size = tuple(float(np.ptp(rel @ a) + voxel) for a in (right, ant, up))
        out[name] = _BodyGeometry(pts[name], cen[i], up, ant, size)  # type: ignore[arg-type]
    return out


def _grid(
    case: RealCtCase, f: _Fields, spec: RealCtSpec, geo: Mapping[str, _BodyGeometry]
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
    y_back, y_front = _skin_y(case, f, x_mid, np.linspace(min(lumbar), max(lumbar), 5))
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
    values = _draw_values(case, spec, streams[0], streams[4])
    blob = _place_blob(case, f, spec, streams[1])
    geo = _body_geometry(case)
    mat, shape, y_back = _grid(case, f, spec, geo)
    nk, nj, ni = shape
    n_sub = math.ceil(spec.slice_thickness_mm / 1.5)
    n_sub += 1 - n_sub % 2
    water, fat, r2 = (np.zeros(shape, np.float32) for _ in range(3))
    tissue, core = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    labels = np.zeros(shape, np.int16)
    for k in range(nk):
        xyz = subsample_points(mat, n_sub, (k * n_sub, (k + 1) * n_sub), (0, nj), (0, ni))
        pd, ff, rr, tis, lab = _paint(case, f, values, blob, spec, xyz)
        fat_pd = pd * ff
        water[k], fat[k] = (pd - fat_pd).mean(axis=0), fat_pd.mean(axis=0)
        pd_sum = pd.sum(axis=0)
        r2[k] = np.where(pd_sum > 0, (pd * rr).sum(axis=0) / np.maximum(pd_sum, 1e-6), VOID_R2S)
        tissue[k] = tis[n_sub // 2]
        for label in values.level_ff:
            labels[k][2 * (lab == label).sum(axis=0) >= n_sub] = label
        core[k] = ((tis == Tissue.MARROW_CORE) & (lab == labels[k])).all(axis=0) & (labels[k] > 0)
    if spec.field_strength_t == 3.0:
        r2 *= 2.0
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
    named = [lv.level for lv in levels]
    conditions = {
        "orientation": spec.orientation,
        "field": "3T" if spec.field_strength_t == 3.0 else "1.5T",
        "snr": _bin(spec.snr, (5.0, 10.0, 20.0, 50.0)),
        "slice": _bin(spec.slice_thickness_mm, (3.0, 4.0, 6.0 + 1e-9), "mm"),
        "maps": "pdff+r2s" if spec.maps_only else "all",
        "coverage": f"{named[0]}-{named[-1]}" if named else "none",
        "pathology": spec.pathology,
        "anatomy": "realct",
    }
    return LabelledStudy(f"realct-{case.name}-{spec.seed}", study, truth, conditions)


def _vec(values: npt.ArrayLike) -> tuple[float, float, float]:
    x, y, z = (float(c) for c in np.asarray(values, float))
    return x, y, z


def _truth_levels(
    case: RealCtCase,
    spec: RealCtSpec,
    values: _Values,
    blob: _Blob | None,
    geo: Mapping[str, _BodyGeometry],
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
