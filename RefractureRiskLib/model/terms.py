"""Model inputs and terms: how a patient's values become columns of the design matrix.

An *input* is one value the user supplies (named as the cohort column, e.g. ``age_years``), with
its kind, unit and limits:

- ``soft_range`` [lo, hi]: the range the model was built on; outside it the result is an
  extrapolation and carries a warning.
- ``hard_range`` [lo, hi]: physically or clinically impossible beyond it; the value is refused
  with an :class:`InputError` naming the input (never clipped).
- ``missing_value``: what scoring substitutes for a missing input (with a warning).

A *term* turns one input into one or more design columns through a transform:

- ``linear``: (x - center) / scale, e.g. (age - 70) per year, (PDFF - 60) per 10 points.
- ``indicator``: 1 when the value is one of ``levels`` (e.g. sex "F"), else 0.
- ``threshold``: 1 when x > ``above`` (e.g. prevalent vertebral fractures > 0), else 0.
- ``rcs``: Harrell's restricted cubic spline of (x - center) / scale at ``knots`` (knots on the
  transformed scale), k - 1 columns.

Scoring imports this module: numpy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.model.splines import rcs_basis

INPUT_KINDS = ("number", "binary", "category")
TRANSFORM_TYPES = ("linear", "indicator", "threshold", "rcs")


#: Unit mistakes refused for one patient as the cohort schema refuses them for a column:
#: unit -> (largest value on the mistaken scale, what to do).
UNIT_MISTAKES: dict[str, tuple[float, str]] = {
    "%": (1.0, "looks like a fraction 0-1; give percent 0-100 (multiply by 100)"),
    "1/s": (5.0, "looks like 1/ms; give R2* in 1/s (multiply by 1000; from T2* in ms: 1000/T2*)"),
}


@dataclass(frozen=True)
class InputSpec:
    """One user-supplied value: kind, unit, limits and the substitute used when it is missing."""

    name: str
    kind: str  # "number" | "binary" | "category"
    unit: str = ""
    description: str = ""
    soft_range: tuple[float, float] | None = None
    hard_range: tuple[float, float] | None = None
    levels: tuple[str, ...] | None = None  # allowed values of a "category" input
    missing_value: float | str | None = None

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise InputError(
                self.name, f"input kind must be one of {INPUT_KINDS}, got {self.kind!r}"
            )
        if self.kind == "category" and not self.levels:
            raise InputError(self.name, "a category input needs its allowed levels")

    def coerce(self, value: Any, source: str = "patient") -> float | str:
        """Check one value against kind and hard limits; returns a float (or str for categories).

        Raises InputError naming ``source`` and the input for a wrong type or an impossible value.
        """
        where = f"{source}: {self.name}"
        if self.kind == "category":
            text = str(value).strip()
            if text not in (self.levels or ()):
                raise InputError(where, f"{value!r} is not one of {list(self.levels or ())}")
            return text
        if isinstance(value, bool | np.bool_) and self.kind != "binary":
            # JSON true/false is 1/0 to Python: a T-score of "true" would be scored as +1
            raise InputError(where, f"expected a number{self._unit_hint()}, got {value!r}")
        if isinstance(value, bool | int | float | np.integer | np.floating):
            number = float(value)
        else:
            raise InputError(where, f"expected a number{self._unit_hint()}, got {value!r}")
        if not math.isfinite(number):
            raise InputError(where, f"expected a finite number, got {value!r}")
        if self.kind == "binary" and number not in (0.0, 1.0):
            raise InputError(where, f"expected 0 (no) or 1 (yes), got {value!r}")
        if self.hard_range is not None:
            lo, hi = self.hard_range
            if not lo <= number <= hi:
                raise InputError(
                    where,
                    f"{number:g}{self._unit_hint(' ')} is outside the allowed range "
                    f"[{lo:g}, {hi:g}] (check the unit)",
                )
        mistake = self._unit_mistake(number)
        if mistake is not None:
            raise InputError(where, mistake)
        return number

    def _unit_mistake(self, number: float) -> str | None:
        """Why ``number`` looks like a value in the wrong unit, or None.

        Only where the mistaken scale lies wholly below the input's intended (soft) range, so a
        plausible value is never refused: a PDFF of 0.55 % is a fraction 0.55 given by mistake.
        """
        rule = UNIT_MISTAKES.get(self.unit)
        if rule is None or self.soft_range is None:
            return None
        top, reason = rule
        if 0.0 < number <= top < self.soft_range[0]:
            return f"{number:g} {self.unit} {reason}"
        return None

    def outside_soft_range(self, value: float | str) -> bool:
        if self.soft_range is None or isinstance(value, str):
            return False
        lo, hi = self.soft_range
        return not lo <= float(value) <= hi

    def _unit_hint(self, sep: str = " in ") -> str:
        return f"{sep}{self.unit}" if self.unit else ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "unit": self.unit}
        out["description"] = self.description
        out["soft_range"] = list(self.soft_range) if self.soft_range is not None else None
        out["hard_range"] = list(self.hard_range) if self.hard_range is not None else None
        out["levels"] = list(self.levels) if self.levels is not None else None
        out["missing_value"] = self.missing_value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InputSpec:
        def pair(v: Any) -> tuple[float, float] | None:
            return None if v is None else (float(v[0]), float(v[1]))

        levels = data.get("levels")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            unit=str(data.get("unit", "")),
            description=str(data.get("description", "")),
            soft_range=pair(data.get("soft_range")),
            hard_range=pair(data.get("hard_range")),
            levels=tuple(str(v) for v in levels) if levels is not None else None,
            missing_value=data.get("missing_value"),
        )


@dataclass(frozen=True)
class Transform:
    """How an input value becomes design columns (see the module docstring for the types)."""

    type: str
    center: float = 0.0
    scale: float = 1.0
    levels: tuple[str, ...] = ()
    above: float = 0.0
    knots: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in TRANSFORM_TYPES:
            raise InputError(
                "transform", f"type must be one of {TRANSFORM_TYPES}, got {self.type!r}"
            )
        if self.type in ("linear", "rcs") and not (math.isfinite(self.scale) and self.scale > 0):
            raise InputError("transform", f"scale must be a positive number, got {self.scale!r}")
        if self.type == "rcs" and (
            len(self.knots) < 3
            or any(b <= a for a, b in zip(self.knots, self.knots[1:], strict=False))
        ):
            raise InputError("transform", f"rcs needs >= 3 increasing knots, got {self.knots!r}")
        if self.type == "indicator" and not self.levels:
            raise InputError("transform", "an indicator transform needs its levels")

    @property
    def n_columns(self) -> int:
        return len(self.knots) - 1 if self.type == "rcs" else 1

    def columns(self, values: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Design columns (n, n_columns) for already checked input values."""
        if self.type == "indicator":
            wanted = set(self.levels)
            return np.array([[1.0 if _level(v) in wanted else 0.0] for v in values]).reshape(-1, 1)
        x = np.asarray(values, dtype=float).reshape(-1)
        if self.type == "threshold":
            return (x > self.above).astype(float).reshape(-1, 1)
        z = (x - self.center) / self.scale
        if self.type == "linear":
            return z.reshape(-1, 1)
        return rcs_basis(z, self.knots)

    def column_one(self, value: float | str) -> list[float]:
        """The design columns of a single value, without numpy overhead (scoring is per patient)."""
        if self.type == "indicator":
            return [1.0 if _level(value) in self.levels else 0.0]
        x = float(value)
        if self.type == "threshold":
            return [1.0 if x > self.above else 0.0]
        z = (x - self.center) / self.scale
        if self.type == "linear":
            return [z]
        return [float(v) for v in rcs_basis(np.array([z]), self.knots)[0]]

    def to_json(self) -> dict[str, Any]:
        if self.type == "indicator":
            return {"type": "indicator", "levels": list(self.levels)}
        if self.type == "threshold":
            return {"type": "threshold", "above": self.above}
        out: dict[str, Any] = {"type": self.type, "center": self.center, "scale": self.scale}
        if self.type == "rcs":
            out["knots"] = list(self.knots)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Transform:
        return cls(
            type=str(data["type"]),
            center=float(data.get("center", 0.0)),
            scale=float(data.get("scale", 1.0)),
            levels=tuple(_level(v) for v in data.get("levels", ())),
            above=float(data.get("above", 0.0)),
            knots=tuple(float(k) for k in data.get("knots", ())),
        )


def _level(value: Any) -> str:
    """Category levels compare as text; 1.0 and 1 are the same level "1"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


@dataclass(frozen=True)
class Term:
    """One model term: an input, its transform, coefficients (one per column) and provenance."""

    name: str
    input: str
    transform: Transform
    coefficients: tuple[float, ...] = ()
    label: str = ""
    provenance: str = ""
    column_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.column_names:
            n = self.transform.n_columns
            names = (self.name,) if n == 1 else tuple(f"{self.name}[{i}]" for i in range(n))
            object.__setattr__(self, "column_names", names)
        if self.coefficients and len(self.coefficients) != self.transform.n_columns:
            raise InputError(
                self.name,
                f"{self.transform.n_columns} coefficient(s) expected, got {len(self.coefficients)}",
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "input": self.input,
            "transform": self.transform.to_json(),
            "columns": list(self.column_names),
            "coefficients": list(self.coefficients),
            "provenance": self.provenance,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Term:
        return cls(
            name=str(data["name"]),
            input=str(data["input"]),
            transform=Transform.from_json(data["transform"]),
            coefficients=tuple(float(c) for c in data.get("coefficients", ())),
            label=str(data.get("label", "")),
            provenance=str(data.get("provenance", "")),
            column_names=tuple(str(c) for c in data.get("columns", ())),
        )


def design_matrix(terms: Sequence[Term], table: Mapping[str, Sequence[Any]]) -> np.ndarray:
    """Design matrix (n, sum of term columns), no intercept column, from column-wise inputs.

    ``table`` maps input names to equal-length sequences (a dict of lists, or a pandas DataFrame:
    ``df[name]`` works for both). Values must be complete and already checked.
    """
    blocks = []
    for term in terms:
        if term.input not in table:
            raise InputError(term.input, f"input column needed by term {term.name!r} is missing")
        values = table[term.input]
        values = values.to_numpy() if hasattr(values, "to_numpy") else values
        blocks.append(term.transform.columns(values))
    return np.hstack(blocks) if blocks else np.empty((0, 0))
