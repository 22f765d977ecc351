"""A batch's progress display: a tqdm bar with ETA on a terminal, one plain line per study
otherwise (logs, CI)."""

from __future__ import annotations

import contextlib
import time
from typing import Any, TextIO


class Progress:
    """Counts finished studies and shows them on ``stream`` (None = quiet)."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total, self.stream, self.count = total, stream, 0
        self.t0 = time.perf_counter()
        self.bar: Any = None
        if stream is not None and total and stream.isatty():
            with contextlib.suppress(ImportError):
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="study", file=stream, dynamic_ncols=True)

    def update(self, patient_id: str, status: str, seconds: float) -> None:
        self.count += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"{patient_id} {status}", refresh=False)
            self.bar.update(1)
            return
        if self.stream is None:
            return
        elapsed = time.perf_counter() - self.t0
        left = (self.total - self.count) * elapsed / self.count
        print(
            f"[{self.count}/{self.total}] {patient_id}: {status} ({seconds:.1f} s); "
            f"elapsed {hms(elapsed)}, ETA {hms(left)}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def hms(seconds: float) -> str:
    """``seconds`` as h:mm:ss."""
    s = round(seconds)
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"
