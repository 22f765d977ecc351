"""The real labelled CT behind the real-CT studies (:mod:`.realct`): the CT, its vertebra, body
and disc masks, and the fields sampled when a study is made from it (smoothed HU and signed
distances to the body, disc and vertebra surfaces, on the CT grid padded by one voxel).
"""

from __future__ import annotations

import itertools
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

WHOLE_IDS: Mapping[int, str] = MappingProxyType(
    {26: "S1", 27: "L5", 28: "L4", 29: "L3", 30: "L2", 31: "L1", 32: "T12", 33: "T11"}
)
BODY_IDS: Mapping[int, str] = MappingProxyType(
    {19: "T12", 20: "L1", 21: "L2", 22: "L3", 23: "L4", 24: "L5"}
)
TS_DIR = "totalsegmentator"
AIR_HU = -1000.0


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
    fields: CaseFields = field(repr=False)

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
        fields=case_fields(ct, bodies, discs, vert),
    )


@dataclass(frozen=True, eq=False)
class CaseFields:
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


def case_fields(
    ct: Volume, bodies: npt.NDArray, discs: npt.NDArray, vert: npt.NDArray
) -> CaseFields:
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
    return CaseFields(np.stack(padded, axis=-1).astype(np.float32), near, to_kji)


def to_kji(f: CaseFields, xyz: tuple) -> npt.NDArray:
    m = f.ras_to_kji.astype(np.float32)
    x, y, z = (np.ravel(c).astype(np.float32) for c in xyz)
    return np.stack([m[r, 0] * x + m[r, 1] * y + m[r, 2] * z + m[r, 3] for r in range(3)])


@dataclass(frozen=True)
class BodyGeometry:
    """One vertebral body of the CT: its mask points, centre, axes and size (RAS mm)."""

    points: npt.NDArray[np.float64]  # RAS of the CT mask voxel centres
    centre: npt.NDArray[np.float64]
    superior: npt.NDArray[np.float64]
    anterior: npt.NDArray[np.float64]
    size_mm: tuple[float, float, float]  # width, depth, height


def body_geometry(case: RealCtCase) -> dict[str, BodyGeometry]:
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
        out[name] = BodyGeometry(pts[name], cen[i], up, ant, size)  # type: ignore[arg-type]
    return out
