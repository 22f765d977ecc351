"""Model development: the cohort table, training, validation, reports, synthetic cohorts.

Run by whoever builds or checks a model, never by a clinic scoring a patient; it needs pandas,
scipy, scikit-learn and matplotlib. The scoring side (``RefractureRiskLib.model``) needs only
numpy and never imports this package.
"""
