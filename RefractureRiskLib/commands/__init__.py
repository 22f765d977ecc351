"""Subcommands of ``refracture-risk``: one module each (see ``RefractureRiskLib.cli``)."""
