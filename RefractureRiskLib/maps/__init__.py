"""Unit normalisation of PDFF/R2* maps (and, later, fat-water separation from echoes)."""
