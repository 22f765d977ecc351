"""Risk model, scoring side: model files, terms, splines, scoring, model cards. numpy + stdlib only.

This package is what a clinic runs (and what Slicer, which has no pandas, imports);
``Testing/test_library_purity.py`` imports every module here and fails if anything but numpy, the
standard library and the project's own core/model modules is loaded (``schema.py`` excepted: an
alias of ``dev/schema.py`` kept for batch/). Everything that builds or checks a model (cohort
table, training, validation, reports) lives in :mod:`.dev`.
"""
