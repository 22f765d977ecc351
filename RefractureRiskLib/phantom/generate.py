"""``generate_phantom``: a synthetic IDEAL-IQ spine study with its ground truth.

Steps: draw the anatomy and tissue values from the seed (:mod:`.raster`, :mod:`.tissues`,
:mod:`.anatomy`), lay out the acquisition grid (:mod:`.grid`), rasterise with partial volume
across slices, then synthesise the maps with bias field and noise (:mod:`.signal`). Random draws
come from independent streams of ``SeedSequence(seed)`` (0 anatomy, 1 tissue values, 2 bias
field, 3 map noise, 4 marrow texture, 5 echo noise), so for instance changing the SNR or the
grid never changes the anatomy or the true values.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.levels import level_label
from RefractureRiskLib.core.volume import Volume
from RefractureRiskLib.phantom import anatomy as an
from RefractureRiskLib.phantom.grid import acquisition_grid, n_subsamples
from RefractureRiskLib.phantom.phantom_model import PhantomModel, build_model
from RefractureRiskLib.phantom.raster import rasterise
from RefractureRiskLib.phantom.signal import (
    bias_field,
    echo_times_ms,
    synthesise_echoes,
    synthesise_maps,
)
from RefractureRiskLib.phantom.spec import PhantomSpec
from RefractureRiskLib.phantom.truth import (
    PhantomLevel,
    PhantomStudy,
    PhantomTruth,
    synthetic_study,
)


def generate_phantom(spec: PhantomSpec | None = None) -> PhantomStudy:
    """Build the synthetic IDEAL-IQ study described by ``spec`` (deterministic per seed).

    Returns the study (maps ``water``, ``fat``, ``in_phase``, ``out_phase`` in signal units,
    ``pdff`` in percent, ``r2s`` in 1/s, all on one grid; provenance vendor "synthetic", field
    strength and echo times) and the truth (body label map, tissue map, per-level values).
    """
    spec = PhantomSpec() if spec is None else spec
    md = build_model(spec)
    mat, shape = acquisition_grid(spec, md.bodies, md.curve)
    raster = rasterise(md, mat, shape, n_subsamples(spec))
    streams = np.random.SeedSequence(int(spec.seed)).spawn(6)
    bias_rng, noise_rng = np.random.default_rng(streams[2]), np.random.default_rng(streams[3])
    bias: npt.NDArray | np.float32 = np.float32(1.0)
    if spec.bias_field > 0:
        k, j, i = (np.arange(n, dtype=np.float32) for n in shape)
        k, j, i = k[:, None, None], j[None, :, None], i[None, None, :]
        xyz = [mat[r, 0] * i + mat[r, 1] * j + mat[r, 2] * k + mat[r, 3] for r in range(3)]
        bias = bias_field(*xyz, amplitude=spec.bias_field, rng=bias_rng)
    maps = synthesise_maps(
        raster["water"],
        raster["fat"],
        raster["r2s"],
        spec.field_strength_t,
        bias,
        spec.snr,
        noise_rng,
    )
    if spec.include_echoes:
        maps.update(
            synthesise_echoes(
                raster["water"],
                raster["fat"],
                raster["r2s"],
                spec.field_strength_t,
                bias,
                spec.snr,
                np.random.default_rng(streams[5]),
            )
        )
    study = synthetic_study(
        maps,
        mat,
        generator="RefractureRisk phantom",
        source=f"RefractureRiskLib.phantom seed {spec.seed}",
        field_strength_t=spec.field_strength_t,
        echo_times_ms=echo_times_ms(spec.field_strength_t),
        snr=spec.snr,
    )
    labels = Volume(raster["label"], mat)
    truth = PhantomTruth(
        body_labels=labels,
        levels=_truth_levels(md, raster["label"], labels.voxel_volume_ml),
        tissue=Volume(raster["tissue"], mat),
        core=Volume(raster["core"], mat),
    )
    return PhantomStudy(spec=spec, study=study, truth=truth)


def _vec(values: npt.ArrayLike) -> tuple[float, float, float]:
    x, y, z = (float(c) for c in np.asarray(values, float))
    return x, y, z


def _truth_levels(
    md: PhantomModel, labels: npt.NDArray, voxel_ml: float
) -> tuple[PhantomLevel, ...]:
    spec = md.spec
    levels = []
    for bd in md.bodies:
        if not bd.labelled:
            continue
        lv = md.values[bd.name]
        label = level_label(bd.name)
        lesion = md.lesion if spec.lesion_level == bd.name else None
        levels.append(
            PhantomLevel(
                level=bd.name,
                label=label,
                marrow_pdff_pct=float(lv.pdff_pct),
                marrow_r2s_per_s=float(lv.r2s_per_s),
                height_mm=float(bd.min_height_mm),
                width_mm=float(bd.width_mm),
                depth_mm=float(bd.depth_mm),
                body_volume_ml=float(np.count_nonzero(labels == label) * voxel_ml),
                centre_ras=_vec(bd.centre_ras),
                fractured=bd.name in spec.fractured,
                height_loss_frac=float(spec.fractured.get(bd.name, 0.0)),
                cemented=bd.name in spec.cemented,
                lesion=lesion is not None,
                analytic_volume_ml=an.body_volume_mm3(bd.width_mm, bd.depth_mm, bd.mean_height_mm)
                / 1000.0,
                nominal_height_mm=float(bd.nominal_height_mm),
                oedema_pdff_drop_pct=float(lv.oedema_drop_pct),
                rim_pdff_drop_pct=float(lv.rim_drop_pct),
                superior_ras=_vec(bd.superior),
                anterior_ras=_vec(bd.anterior),
                lesion_centre_ras=(
                    None
                    if lesion is None
                    else _vec(bd.centre_ras + lesion.centre_local @ bd.rotation)
                ),
                lesion_radius_mm=0.0 if lesion is None else float(lesion.radius_mm),
                fracture_shape=spec.fracture_shape if bd.name in spec.fractured else "crush",
                height_anterior_mm=bd.height_at_mm(0.45 * bd.depth_mm),
                height_middle_mm=bd.height_at_mm(0.0),
                height_posterior_mm=bd.height_at_mm(-0.45 * bd.depth_mm),
            )
        )
    return tuple(levels)
