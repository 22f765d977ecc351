"""The one place that converts :class:`Volume` to and from SimpleITK images and image files.

SimpleITK stores geometry in LPS with origin, spacing and a direction matrix; ``Volume`` stores a
single IJK-to-RAS matrix. NRRD (``.nrrd``, ``.nhdr``) and NIfTI (``.nii``, ``.nii.gz``) are read and
written through SimpleITK so they agree with what Slicer and ITK-based tools see.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.volume import LPS_TO_RAS, Volume

if TYPE_CHECKING:
    import SimpleITK as sitk

# SimpleITK (about 0.1 s to import) is imported by the functions that use it: a module that
# imports this one for a name or a type does not load it (Testing/test_startup.py).

IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


def volume_to_sitk(volume: Volume) -> sitk.Image:
    """SimpleITK image (LPS geometry) with the same voxels and geometry as ``volume``."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array))
    lps = LPS_TO_RAS @ volume.ijk_to_ras  # LPS_TO_RAS is its own inverse
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing[np.newaxis, :]
    image.SetSpacing([float(s) for s in spacing])
    image.SetOrigin([float(o) for o in lps[:3, 3]])
    image.SetDirection([float(d) for d in direction.ravel()])
    return image


def sitk_to_volume(image: sitk.Image) -> Volume:
    """``Volume`` from a 3D SimpleITK image (LPS -> RAS)."""
    import SimpleITK as sitk

    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError("expected a scalar image, got a vector image")
    direction = np.array(image.GetDirection(), float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.array(image.GetSpacing(), float)[np.newaxis, :]
    lps[:3, 3] = image.GetOrigin()
    return Volume(sitk.GetArrayFromImage(image), LPS_TO_RAS @ lps)


def _has_image_suffix(path: Path) -> bool:
    return any(path.name.lower().endswith(s) for s in IMAGE_SUFFIXES)


def read_image(path: str | Path) -> Volume:
    """Read a NRRD/NIfTI/MetaImage file into a ``Volume``; InputError names the file on failure."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "file not found")
    if not _has_image_suffix(p):
        raise InputError(p, f"not an image file; expected one of {', '.join(IMAGE_SUFFIXES)}")
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(p))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise InputError(p, f"cannot be read as an image ({first})") from None
    try:
        return sitk_to_volume(image)
    except ValueError as err:
        raise InputError(p, str(err)) from None


def write_image(volume: Volume, path: str | Path, compress: bool = True) -> Path:
    """Write ``volume`` to NRRD/NIfTI/MetaImage (chosen by suffix); returns the path."""
    p = Path(path)
    if not _has_image_suffix(p):
        raise InputError(p, f"unsupported image suffix; use one of {', '.join(IMAGE_SUFFIXES)}")
    import SimpleITK as sitk

    p.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume_to_sitk(volume), str(p), compress)
    return p
