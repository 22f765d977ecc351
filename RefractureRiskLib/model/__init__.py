"""Risk model, scoring side: model files, terms, splines, scoring, model cards. numpy + stdlib only.

This package is what a clinic runs (and what Slicer, which has no pandas, imports); a test imports
every module here with pandas, scipy, scikit-learn and matplotlib blocked. Everything that builds or
checks a model (cohort table, training, validation, reports) lives in :mod:`.dev`.
"""
