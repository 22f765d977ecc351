"""QA regression: inspect's acquisition line reads well when headers lack echo times or field."""

from __future__ import annotations

from RefractureRiskLib.commands.inspect import _acquisition_line
from RefractureRiskLib.core.study import StudyProvenance


def test_missing_echo_times_and_field_are_said_plainly() -> None:
    line = _acquisition_line(StudyProvenance(vendor="Philips"))
    assert line == (
        "Vendor Philips, field strength not in the headers, echo times not in the headers"
    )
    assert "None" not in line and ", ms" not in line


def test_known_values_keep_their_units() -> None:
    prov = StudyProvenance(
        vendor="GE", manufacturer_model="SIGNA", field_strength_t=3.0, echo_times_ms=(1.2, 2.3)
    )
    assert _acquisition_line(prov) == (
        "Vendor GE SIGNA, field strength 3 T, echo times 1.2, 2.3 ms"
    )
