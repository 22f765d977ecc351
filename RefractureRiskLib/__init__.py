"""RefractureRiskLib: the pure-Python core of RefractureRisk.

Layers (data flows one way): io -> maps -> roi -> stats -> model -> report.
``core`` holds the domain types every layer shares. Nothing here imports slicer, qt or vtk.
"""

__version__ = "0.1.0"
