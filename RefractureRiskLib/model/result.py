"""What scoring one patient gives (:class:`RiskResult`, one :class:`Contribution` per term) and
the clinical words every display uses for it (baseline, each factor, its direction). numpy and the
standard library only, like the rest of the scoring side; computed by
:func:`~RefractureRiskLib.model.scoring.score`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: The label every display of a range result carries.
RANGE_LABEL = "range over missing inputs, not a point estimate"
RANGE_INTERVAL_NOTE = (
    "95% interval not shown: the risk is a range over the missing inputs' plausible values "
    "(it does not include the model's statistical uncertainty)"
)


@dataclass(frozen=True)
class Contribution:
    """One term's share of the linear predictor for one patient.

    ``log_odds`` is relative to the term's reference value; for a missing input scored as a
    range it is NaN and ``log_odds_range`` holds (lowest, highest) over the plausible values.
    ``no_effect``: every coefficient of the term is 0 (the term cannot change the risk).
    """

    term: str
    label: str
    input: str
    value: float | str | None
    log_odds: float
    input_description: str = ""
    unit: str = ""
    input_kind: str = "number"
    no_effect: bool = False
    log_odds_range: tuple[float, float] | None = None

    @property
    def missing(self) -> bool:
        return self.value is None


@dataclass(frozen=True)
class RiskResult:
    """The risk of one patient under one model.

    A result with missing inputs scored as a range has ``probability`` NaN, no ``interval``,
    ``probability_range`` (lowest, highest) and ``missing_inputs`` naming them.
    """

    model_name: str
    validated: bool
    outcome: str
    horizon_days: int
    probability: float
    interval: tuple[float, float] | None  # 95%, probability scale
    interval_note: str
    linear_predictor: float
    contributions: tuple[Contribution, ...]
    warnings: tuple[str, ...]
    #: The text every display of this result must carry when the model is not validated.
    model_warning: str | None = None
    probability_range: tuple[float, float] | None = None
    missing_inputs: tuple[str, ...] = ()
    #: Outcome rate of the training cohort (events / patients), None when the model has none.
    baseline_risk: float | None = None
    baseline_note: str = ""
    #: What the model is for (the model file's description and outcome definition).
    intended_use: str = ""
    #: The model card's limitations, for every display that has room for them.
    caveats: tuple[str, ...] = ()

    @property
    def is_range(self) -> bool:
        return self.probability_range is not None

    def risk_text(self) -> str:
        """The risk for people: "29.5%" or "18.0% to 41.2% (range over missing inputs, ...)"."""
        if self.probability_range is not None:
            lo, hi = self.probability_range
            return f"{100 * lo:.1f}% to {100 * hi:.1f}% ({RANGE_LABEL})"
        return f"{100 * self.probability:.1f}%"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = list(self.interval) if self.interval else None
        out["probability_range"] = list(self.probability_range) if self.probability_range else None
        out["kind"] = RANGE_LABEL if self.is_range else "point estimate"
        out["risk_text"] = self.risk_text()
        return out

    def format_text(self) -> str:
        lines = []
        if self.model_warning:
            lines.append(f"*** {self.model_warning.upper()} ***")
        lines.append(f"Model: {self.model_name}")
        lines.append(f"Outcome: {self.outcome} (horizon {self.horizon_days} days)")
        if self.is_range:
            lines.append(f"Risk: {self.risk_text()}")
            lines.append(f"Missing inputs: {', '.join(self.missing_inputs)}")
        else:
            lines.append(f"Probability: {self.risk_text()}")
        if self.interval is not None:
            lo, hi = self.interval
            lines.append(f"95% interval: {100 * lo:.1f}% to {100 * hi:.1f}%")
        else:
            note = self.interval_note.removeprefix("95% interval ")
            lines.append(f"95% interval: {note}")
        lines.append(f"Baseline: {baseline_text(self)}")
        lines.append("")
        width = max([46, *(len(c.label or c.term) for c in self.contributions)])
        lines.append(f"{'term':<{width}} {'value':>10} {'log-odds':>16}")
        for c in self.contributions:
            value = "missing" if c.missing else format_value(c.value)
            lines.append(f"{c.label or c.term:<{width}} {value:>10} {format_log_odds(c):>16}")
        lines.append("(log-odds relative to each term's reference value; > 0 raises the risk)")
        if self.warnings:
            lines.append("")
            lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def baseline_text(risk: RiskResult) -> str:
    """The cohort's baseline risk over the horizon, or why the model has none."""
    if risk.baseline_risk is None:
        return risk.baseline_note or "not available for this model"
    return f"{100 * risk.baseline_risk:.1f}% ({risk.baseline_note})"


def format_log_odds(c: Contribution) -> str:
    """A contribution's log-odds for people: "+0.172", "-0.53 to +0.38", "0 (no effect)"."""
    if c.log_odds_range is not None:
        lo, hi = c.log_odds_range
        return f"{lo:+.2f} to {hi:+.2f}"
    if c.no_effect:
        return "0 (no effect)"
    return f"{c.log_odds:+.3f}"


#: Clinical words for category values the generic text would spell as codes.
CATEGORY_WORDS: dict[str, dict[str, str]] = {"sex": {"F": "female sex", "M": "male sex"}}
#: Clinical words for inputs whose description's first clause is not a name (the cohort schema's
#: "MRI field strength, 1.5 or 3.0 T; ..." would read "MRI field strength, 1.5 or 3.0 T: 3 T").
INPUT_WORDS: dict[str, str] = {"mri_field_T": "MRI field strength"}


def factor_text(c: Contribution, detail: str = "") -> str:
    """A term's input and value in clinical words, in sentence case, e.g. "No anti-osteoporosis
    treatment after surgery", "Age at surgery: 74 years", "Female sex"; ``detail`` is added in
    brackets (e.g. the levels a summary averages). Built from the input's description, never from
    variable names; sentence case whatever the case of the description (a demonstration model's
    "age at surgery" and a trained model's "Age at the index surgery" read alike)."""
    what = INPUT_WORDS.get(c.input) or clean_description(c.input_description)
    what = what or c.input.replace("_", " ")
    if c.missing:
        text = f"{what}: missing"
    elif c.input_kind == "binary":
        yes = float(c.value) == 1.0  # type: ignore[arg-type]
        plain = _without_article(what)
        text = what if yes else "no " + plain[:1].lower() + plain[1:]
    elif c.input_kind == "category":
        text = CATEGORY_WORDS.get(c.input, {}).get(str(c.value), f"{what}: {c.value}")
    else:
        unit = "" if c.unit in ("", "count") else (c.unit if c.unit == "%" else f" {c.unit}")
        text = f"{what}: {format_value(c.value)}{unit}"  # type: ignore[arg-type]
    text = sentence_case(text)
    return f"{text} ({detail})" if detail else text


def sentence_case(text: str) -> str:
    """The first letter upper case, the rest as written ("DXA", "PDFF", "T11-L2" unchanged)."""
    return text[:1].upper() + text[1:]


#: Below this |log-odds| (odds changed by under about 5%) a term "raises risk slightly": a bar
#: too short to see beside plain "raises risk" would read as a mistake.
SLIGHT_LOG_ODDS = 0.05


def direction_text(c: Contribution) -> str:
    """What the term does to this patient's risk, relative to the model's reference value."""
    if c.no_effect:
        return "no effect in this model (coefficient 0)"
    if c.log_odds_range is not None:
        lo, hi = c.log_odds_range
        return f"unknown: from {lo:+.2f} to {hi:+.2f} log-odds"
    slightly = " slightly" if abs(c.log_odds) < SLIGHT_LOG_ODDS else ""
    if c.log_odds > 0:
        return "raises risk" + slightly
    if c.log_odds < 0:
        return "lowers risk" + slightly
    return "at the reference value: no change"


def clean_description(text: str) -> str:
    """The first clause of an input description, without "(1 = yes)"-style codes."""
    first = text.split("; ")[0].split(". ")[0].strip().rstrip(".")
    for code in (" (1 = yes)", " (1 = yes, 0 = no)", " (1) or not (0)"):
        first = first.replace(code, "")
    return first


def _without_article(text: str) -> str:
    for article in ("a ", "an ", "the "):
        if text.lower().startswith(article):
            return text[len(article) :]
    return text


def format_value(value: float | str) -> str:
    """An input value for people (terminal, report): 4 significant digits.

    No float noise like 140.14999999999998, no false precision like a PDFF of 50.1943 %.
    """
    return value if isinstance(value, str) else f"{value:.4g}"
