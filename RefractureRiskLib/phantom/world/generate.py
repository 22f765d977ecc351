"""``generate_world``: build one world study (maps, provenance) with its truth and conditions."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.levels import VERTEBRAL_LEVELS, level_label
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.phantom.truth import (
    LabelledStudy,
    PhantomLevel,
    PhantomTruth,
    Tissue,
    synthetic_study,
)
from RefractureRiskLib.phantom.world import bodies as bd
from RefractureRiskLib.phantom.world.acquire import ECHO_TIMES_MS, Grid, make_grid, synthesise
from RefractureRiskLib.phantom.world.canvas import Canvas, smooth_field
from RefractureRiskLib.phantom.world.chain import Vertebra, build_chain
from RefractureRiskLib.phantom.world.skeleton import body_label, paint_spine
from RefractureRiskLib.phantom.world.spec import WorldSpec
from RefractureRiskLib.phantom.world.tissues import Palette, make_palette
from RefractureRiskLib.phantom.world.trunk import paint_trunk


def generate_world(spec: WorldSpec) -> LabelledStudy:
    """The study of ``spec``: maps in percent (pdff), 1/s (r2s) and relative signal on one
    grid, truth (body labels T10=1..S1=9, tissue classes at voxel centres, core marrow) and
    short condition strings. Deterministic given the spec."""
    streams = np.random.SeedSequence(spec.seed).spawn(5)
    rng_anat, rng_mat, rng_path, rng_tex, rng_noise = (np.random.default_rng(s) for s in streams)
    fr = {f.level: f for f in spec.fractures}
    chain = build_chain(spec, rng_anat, {k: bd.stack_factor(f) for k, f in fr.items()})
    pal = make_palette(spec, rng_mat)
    grid = make_grid(spec, chain)
    cv = grid.canvas()
    paint_trunk(cv, chain, spec, pal)
    lo = np.array([v.centre for v in chain]).min(0) - 60
    hi = np.array([v.centre for v in chain]).max(0) + 60
    texture = smooth_field(rng_tex, lo, hi, 3.0, 5.0)
    paint_spine(cv, chain, spec, pal, rng_path, texture)
    tables = pal.materials.arrays()
    labels, core, tissue = _truth_maps(cv, grid, tables[0])
    _zero_core_texture(cv, grid, labels, core)
    l3 = next(v for v in chain if v.name == "L3")
    y_back = l3.centre[1] - l3.depth_mm / 2 - 60 - spec.subcut_fat_mm
    maps = synthesise(grid, cv, tables, spec, rng_noise, y_back)
    mat = grid.ijk_to_ras
    study = synthetic_study(
        maps,
        mat,
        generator="RefractureRisk world",
        source=f"RefractureRiskLib.phantom.world seed {spec.seed}",
        field_strength_t=spec.field_strength_t,
        echo_times_ms=ECHO_TIMES_MS[spec.field_strength_t],
        snr=spec.snr,
        description="world",
    )
    levels = _levels(spec, chain, pal, grid, labels)
    truth = PhantomTruth(
        body_labels=Volume(labels, mat),
        levels=levels,
        tissue=Volume(tissue, mat),
        core=Volume(core, mat),
    )
    return LabelledStudy(
        name=f"world-{spec.seed}",
        study=study,
        truth=truth,
        conditions=_conditions(spec, chain, cv, grid),
    )


def _truth_maps(cv: Canvas, grid: Grid, tissue_t: npt.NDArray) -> tuple[npt.NDArray, ...]:
    nk, nj, ni = grid.shape
    ns = grid.nsub
    lev = cv.lev.reshape(nk, ns, nj, ni)
    top = np.clip(lev.max(1), 0, None)
    votes = (lev == top[:, None]).sum(1)
    labels = np.where((top > 0) & (2 * votes >= ns), top, 0).astype(np.int16)
    tis = tissue_t[cv.mat].reshape(nk, ns, nj, ni)
    core = ((tis == Tissue.MARROW_CORE) & (lev == labels[:, None]) & (labels[:, None] > 0)).all(1)
    tissue = tis[:, ns // 2].astype(np.uint8)
    return labels, core.astype(np.uint8), tissue


def _zero_core_texture(cv: Canvas, grid: Grid, labels: npt.NDArray, core: npt.NDArray) -> None:
    """Remove each level's mean texture over its core voxels, so the noiseless core mean is the
    level's true PDFF."""
    nk, nj, ni = grid.shape
    off = cv.off.reshape(nk, grid.nsub, nj, ni)
    lev = cv.lev.reshape(nk, grid.nsub, nj, ni)
    for lab in np.unique(labels[core > 0]):
        m = (labels == lab) & (core > 0)
        mean = float(off.transpose(1, 0, 2, 3)[:, m].mean())
        off[lev == lab] -= mean


def _levels(
    spec: WorldSpec, chain: list[Vertebra], pal: Palette, grid: Grid, labels: npt.NDArray
) -> tuple[PhantomLevel, ...]:
    fr = {f.level: f for f in spec.fractures}
    vox_ml = abs(np.linalg.det(grid.ijk_to_ras[:3, :3])) / 1000
    out = []
    for v in chain:
        if v.name not in VERTEBRAL_LEVELS:
            continue
        lab = level_label(v.name)
        count = int((labels == lab).sum())
        if count == 0:
            continue
        f = fr.get(v.name)
        pts = bd.analytic_points(v, f)
        covered = float(grid.inside(pts).mean()) if len(pts) else 0.0
        heights = bd.level_heights(v, f)
        lm = pal.levels[v.name]
        out.append(
            PhantomLevel(
                level=v.name,
                label=lab,
                marrow_pdff_pct=lm.pdff_pct,
                marrow_r2s_per_s=lm.r2s_per_s,
                height_mm=heights["height_mm"],
                width_mm=v.width_mm,
                depth_mm=v.depth_mm,
                body_volume_ml=count * vox_ml,
                centre_ras=tuple(float(c) for c in v.centre),
                fractured=f is not None,
                height_loss_frac=f.height_loss_frac if f else 0.0,
                cemented=v.name in spec.cement_levels,
                lesion=v.name in spec.haemangioma_levels,
                analytic_volume_ml=len(pts) / 1000.0,
                nominal_height_mm=v.height_mm,
                oedema_pdff_drop_pct=lm.oedema_pct,
                rim_pdff_drop_pct=spec.rim_drop_pct,
                superior_ras=tuple(float(c) for c in v.sup),
                anterior_ras=tuple(float(c) for c in v.ant),
                fracture_shape=f.shape if f else "none",
                height_anterior_mm=heights["height_anterior_mm"],
                height_middle_mm=heights["height_middle_mm"],
                height_posterior_mm=heights["height_posterior_mm"],
                truncated=covered < 0.9,
            )
        )
    return tuple(out)


def _bin(value: float, edges: tuple[float, ...], names: tuple[str, ...]) -> str:
    return names[int(np.searchsorted(edges, value, side="right"))]


def _conditions(spec: WorldSpec, chain: list[Vertebra], cv: Canvas, grid: Grid) -> dict[str, str]:
    present = set(np.unique(cv.lev).tolist())
    seen = [v.name for i, v in enumerate(chain) if body_label(chain, i) in present]
    path = []
    if spec.fractures:
        path.append("fracture")
    if spec.cement_levels:
        path.append("cement")
    if spec.haemangioma_levels:
        path.append("haemangioma")
    if any(d.modic != "none" for d in spec.discs):
        path.append("modic")
    snr = "noiseless" if spec.snr is None else _bin(spec.snr, (10, 20), ("5-10", "10-20", "20-50"))
    return {
        "orientation": spec.orientation,
        "field": "3T" if spec.field_strength_t == 3.0 else "1.5T",
        "snr": snr,
        "slice": _bin(spec.slice_thickness_mm, (4, 6), ("3-4mm", "4-6mm", "6-8mm")),
        "maps": spec.maps,
        "coverage": f"{seen[0]}-{seen[-1]}" if seen else "none",
        "pathology": "+".join(path) if path else "none",
        "transitional": spec.transitional,
        "scoliosis": _bin(abs(spec.scoliosis_cobb_deg), (5, 10), ("none", "5-10", "10-20")),
    }
