"""``EchoSet``: complex multi-echo images on one grid, with the facts the separation needs."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from RefractureRiskLib.core.errors import InputError


@dataclass(frozen=True, eq=False)
class EchoSet:
    """Complex echoes ``signal[k, j, i, n]`` (slice, row, column, echo) and their acquisition.

    ``te_s``: echo times in seconds, increasing. ``field_strength_t``: B0 in tesla. The phase
    convention is the ISMRM toolbox's for ``PrecessionIsClockwise == 1`` (readers conjugate other
    data). ``ijk_to_ras``: 4x4 voxel-to-RAS matrix (mm; identity-like when the source has no
    geometry). ``mask``: voxels to process, or None for all with signal. ``provenance``: facts
    about the source (file, vendor, conjugation, phase scaling) carried into the outputs.
    """

    signal: npt.NDArray[np.complex64]
    te_s: tuple[float, ...]
    field_strength_t: float
    ijk_to_ras: npt.NDArray[np.float64] = field(default_factory=lambda: np.eye(4))
    mask: npt.NDArray[np.bool_] | None = None
    source: str = ""
    provenance: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sig = np.asarray(self.signal)
        te = tuple(float(t) for t in np.atleast_1d(self.te_s))
        src = self.source or "echo set"
        if sig.ndim != 4:
            raise InputError(src, f"echo images must be 4D [k, j, i, echo], got shape {sig.shape}")
        if len(te) != sig.shape[3]:
            raise InputError(src, f"{len(te)} echo times for {sig.shape[3]} echo images")
        if len(te) < 3:
            raise InputError(
                src, f"{len(te)} echo(es); fat-water separation with R2* needs at least 3"
            )
        if not all(b > a for a, b in itertools.pairwise(te)) or te[0] <= 0:
            raise InputError(src, f"echo times must be positive and increasing, got {te} s")
        if te[-1] > 0.2:
            raise InputError(src, f"echo times {te} look like ms, expected seconds")
        if not 0.1 <= float(self.field_strength_t) <= 12:
            raise InputError(src, f"field strength {self.field_strength_t} T is not plausible")
        if not np.iscomplexobj(sig):
            raise InputError(src, "echo images are not complex (phase missing)")
        if self.mask is not None and np.asarray(self.mask).shape != sig.shape[:3]:
            raise InputError(src, f"mask shape {np.asarray(self.mask).shape} != {sig.shape[:3]}")
        object.__setattr__(self, "signal", sig.astype(np.complex64, copy=False))
        object.__setattr__(self, "te_s", te)
        object.__setattr__(self, "field_strength_t", float(self.field_strength_t))
        object.__setattr__(self, "ijk_to_ras", np.asarray(self.ijk_to_ras, float))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(nk, nj, ni)`` of the grid."""
        return tuple(self.signal.shape[:3])  # type: ignore[return-value]

    @property
    def n_echoes(self) -> int:
        return len(self.te_s)
