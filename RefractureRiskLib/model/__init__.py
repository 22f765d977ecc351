"""Risk model: cohort schema, training, validation, model files and scoring."""
