"""Model files: a JSON document describing a logistic risk model, checked on load.

The file holds: ``schema`` / ``schema_version``; ``name`` and ``description``; ``validated``;
``outcome`` (name, definition, horizon in days); ``intercept`` (coefficient and provenance);
``inputs`` (kind, unit, soft and hard ranges, substitute for missing; see
:mod:`RefractureRiskLib.model.terms`); ``terms`` (input, transform, coefficients, provenance);
``covariance`` (the coefficient covariance matrix over ["intercept", *term columns], or null with
``covariance_note`` saying why); ``training`` (n, events, centres, period, method; null for a
model not estimated from data); ``validation`` (metrics); ``software`` (name, version); and
``content_sha256``, the SHA-256 of the canonical JSON of everything else (keys sorted, no
whitespace, ASCII). Loading uses ``json`` only — no pickle, no eval — and refuses a file whose
hash does not match, whose schema version is unknown, or whose fields are malformed or
implausible (types, magnitudes, ordered ranges, horizon, covariance: see
:mod:`RefractureRiskLib.model.modelcheck`), with an :class:`InputError` naming the file and the
field path (e.g. ``inputs[0].hard_range``). Files are read by
:func:`RefractureRiskLib.core.jsonfile.read_json_file` (strict JSON: no NaN, no duplicate keys).

This module needs numpy and the standard library only (it runs inside 3D Slicer).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from RefractureRiskLib.core.errors import InputError
from RefractureRiskLib.core.jsonfile import read_json_file
from RefractureRiskLib.model.modelcheck import check_document_types, check_model_values
from RefractureRiskLib.model.terms import InputSpec, Term

SCHEMA_NAME = "refracture-risk-model"
SCHEMA_VERSION = 1
HASH_FIELD = "content_sha256"
DEMO_WARNING = "demonstration model, not validated, not for clinical use"
#: The warning of a model trained on data (``training`` summary present) but not validated.
UNVALIDATED_WARNING = "model not validated, not for clinical use"
REQUIRED_FIELDS = (
    "schema",
    "schema_version",
    "name",
    "validated",
    "outcome",
    "intercept",
    "inputs",
    "terms",
    "covariance",
    "training",
    "validation",
    "software",
)


def canonical_json(document: Mapping[str, Any]) -> str:
    """The canonical text the content hash is computed over (hash field left out)."""
    body = {k: v for k, v in document.items() if k != HASH_FIELD}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def content_hash(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(document).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class RiskModel:
    """A logistic model: P(outcome within horizon) = 1 / (1 + exp(-(intercept + sum(terms))))."""

    name: str
    intercept: float
    inputs: tuple[InputSpec, ...]
    terms: tuple[Term, ...]
    validated: bool
    outcome: dict[str, Any]
    intercept_provenance: str = ""
    description: str = ""
    covariance: np.ndarray | None = None  # over ("intercept", *column_names)
    covariance_note: str = ""
    training: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    software: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # other documented sections, kept as is
    content_sha256: str = ""

    def __post_init__(self) -> None:
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise InputError("model inputs", "input names must be unique")
        for term in self.terms:
            if term.input not in names:
                raise InputError(f"term {term.name}", f"uses undeclared input {term.input!r}")
            if len(term.coefficients) != term.transform.n_columns:
                raise InputError(f"term {term.name}", "has no coefficients")
        if self.covariance is not None:
            p = 1 + len(self.column_names)
            if self.covariance.shape != (p, p):
                raise InputError("covariance", f"must be {p}x{p}, got {self.covariance.shape}")
        object.__setattr__(self, "_inputs_by_name", {i.name: i for i in self.inputs})

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c for t in self.terms for c in t.column_names)

    @property
    def horizon_days(self) -> int:
        return int(self.outcome.get("horizon_days", 365))

    @property
    def warning_text(self) -> str | None:
        """The text every output made with an unvalidated model must carry.

        A model without a training summary (coefficients not estimated from data: the bundled
        demonstration model) is called a demonstration model; a model trained on a cohort but
        not validated is not (calling it a demonstration would misdescribe where it came from).
        """
        if self.validated:
            return None
        return DEMO_WARNING if not self.training else UNVALIDATED_WARNING

    def input(self, name: str) -> InputSpec:
        return self._inputs_by_name[name]  # type: ignore[attr-defined]

    # ---------------------------------------------------------------- JSON
    def to_document(self) -> dict[str, Any]:
        """The JSON document, with its content hash (recomputed)."""
        doc: dict[str, Any] = {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "description": self.description,
            "validated": bool(self.validated),
            "outcome": dict(self.outcome),
            "intercept": {"coefficient": self.intercept, "provenance": self.intercept_provenance},
            "inputs": [i.to_json() for i in self.inputs],
            "terms": [t.to_json() for t in self.terms],
            "covariance": None
            if self.covariance is None
            else {
                "columns": ["intercept", *self.column_names],
                "matrix": [[float(v) for v in row] for row in self.covariance],
            },
            "covariance_note": self.covariance_note,
            "training": self.training,
            "validation": self.validation,
            "software": dict(self.software),
        }
        doc.update(self.extra)
        doc = plain_json(doc)
        doc[HASH_FIELD] = content_hash(doc)
        return doc

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_document(), indent=2, ensure_ascii=True, allow_nan=False)
        path.write_text(text + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_document(cls, doc: Any, source: str = "model") -> RiskModel:
        """Check and build a model from a parsed JSON document (hash, schema, fields)."""
        stored = _verified_hash(doc, source)
        missing = [k for k in REQUIRED_FIELDS if k not in doc]
        if missing:
            raise InputError(source, f"missing field(s): {', '.join(missing)}")
        if not isinstance(doc["validated"], bool):
            raise InputError(f"{source}: validated", "must be true or false")
        check_document_types(doc, source)
        try:
            inputs = tuple(InputSpec.from_json(i) for i in _list(doc, "inputs", source))
            terms = tuple(Term.from_json(t) for t in _list(doc, "terms", source))
            intercept = float(doc["intercept"]["coefficient"])
            cov = None
            if doc["covariance"] is not None:
                cov = np.asarray(doc["covariance"]["matrix"], dtype=float)
                expected = ["intercept", *(c for t in terms for c in t.column_names)]
                if list(doc["covariance"].get("columns", [])) != expected:
                    raise InputError(f"{source}: covariance", f"columns must be {expected}")
            known = {*REQUIRED_FIELDS, "description", "covariance_note", HASH_FIELD}
            model = cls(
                name=str(doc["name"]),
                description=str(doc.get("description", "")),
                intercept=intercept,
                intercept_provenance=str(doc["intercept"].get("provenance", "")),
                inputs=inputs,
                terms=terms,
                validated=doc["validated"],
                outcome=dict(doc["outcome"]),
                covariance=cov,
                covariance_note=str(doc.get("covariance_note", "")),
                training=doc["training"],
                validation=doc["validation"],
                software=dict(doc["software"]),
                extra={k: v for k, v in doc.items() if k not in known},
                content_sha256=stored,
            )
            check_model_values(model, source)
        except InputError as err:
            if err.source and err.source.startswith(source):
                raise
            raise InputError(f"{source}: {err.source}", err.reason) from None
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
            raise InputError(
                source, f"malformed model file ({type(err).__name__}: {err})"
            ) from None
        return model


def _verified_hash(doc: Any, source: str) -> str:
    """The document's stored content hash, once the document is a model file of this schema
    version whose content still matches it (InputError otherwise)."""
    if not isinstance(doc, dict):
        raise InputError(source, "a model file must hold a JSON object")
    if doc.get("schema") != SCHEMA_NAME:
        raise InputError(source, f"not a model file (schema must be {SCHEMA_NAME!r})")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            source,
            f"schema_version {doc.get('schema_version')!r} is not supported "
            f"(this software reads version {SCHEMA_VERSION})",
        )
    stored = doc.get(HASH_FIELD)
    if not isinstance(stored, str):
        raise InputError(source, f"{HASH_FIELD} is missing: the file cannot be verified")
    try:
        actual = content_hash(doc)
    except ValueError as err:
        raise InputError(source, f"content is not canonical JSON ({err})") from None
    if actual != stored:
        raise InputError(
            source,
            "content hash does not match: the file was changed after it was written "
            "(re-export it from the training pipeline)",
        )
    return stored


def plain_json(value: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays converted, NaN and infinities as null.

    Raises TypeError for anything else (no object is ever written as its repr).
    """
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain_json(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return str(value) if isinstance(value, str) else None
    raise TypeError(f"{type(value).__name__} cannot be stored in a model file")


def _list(doc: Mapping[str, Any], key: str, source: str) -> list[Any]:
    value = doc[key]
    if not isinstance(value, list):
        raise InputError(f"{source}: {key}", "must be a list")
    return value


def load_model(path: str | Path) -> RiskModel:
    """Read and verify a model file; InputError (naming the file) when it cannot be trusted."""
    path = Path(path)
    doc = read_json_file(path, "model file")
    return RiskModel.from_document(doc, source=str(path))


def bundled_model_path(name: str = "demo_model.json") -> Path:
    """Path of a model file shipped with the software.

    An installed wheel carries ``Resources/models`` as ``RefractureRiskLib/_resources/models``;
    a source or editable checkout has ``<repo>/Resources/models``. The first that holds ``name``
    wins. Raises InputError when neither does.
    """
    package_root = Path(__file__).resolve().parents[1]
    candidates = (
        package_root / "_resources" / "models" / name,
        package_root.parent / "Resources" / "models" / name,
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise InputError(name, f"bundled model not found (looked in {', '.join(map(str, candidates))})")
