"""Slicer-side helpers of the RefractureRisk module (as DICOMLib is for the DICOM module).

- :mod:`.library`: importing RefractureRiskLib on first use and checking its Python packages;
- :mod:`.mrml`: MRML nodes <-> library types (volumes, segmentations, tables, markups);
- :mod:`.display`: colours, the risk annotation, the results HTML, the chart and the layout;
- :mod:`.review`: relabelling, accepting and rejecting automatically labelled levels;
- :mod:`.tasks`: long steps off the GUI thread, with progress and cancel;
- :mod:`.fatwater`: echo images instead of maps: recognised, and the maps computed from them;
- :mod:`.workflow`: the workflow the self-test and the slicer-core tests both run.

Like the module file, importing any of these does no work and imports nothing beyond the
standard library, Slicer, VTK and numpy; RefractureRiskLib, Qt and optional packages are
imported inside the functions that need them.
"""
