"""Input/output at the edges: images (NRRD, NIfTI, SimpleITK) and DICOM."""
