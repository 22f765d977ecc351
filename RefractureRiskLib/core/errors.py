"""The one exception type for bad input: it says which file/field and what was expected."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Input the software refuses, with a message a user can act on.

    ``source`` names the file, series or field at fault; ``reason`` says what was wrong and,
    where possible, what was expected. The command line prints ``str(err)`` without a traceback.
    """

    def __init__(self, source: str | Path | None, reason: str) -> None:
        self.source = str(source) if source is not None else None
        self.reason = reason
        super().__init__(f"{self.source}: {reason}" if self.source else reason)
