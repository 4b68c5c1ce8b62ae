"""Training metrics: a CSV log (resume-safe), optional TensorBoard, and a progress bar."""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from faceswap.io.files import write_text_atomic

log = logging.getLogger(__name__)


class MetricsLog:
    """Append one row per logged iteration to ``metrics.csv`` (and TensorBoard when installed).

    Columns are ``iteration, time_s, it_per_s, examples_per_s`` then the loss parts, fixed by
    the first row. On resume, rows past the resumed iteration (logged after the checkpoint a
    crashed run resumes from) are dropped so the file matches the weights.

    Args:
        path: the CSV file.
        resume_from: iteration the run resumes at (0 for a fresh run: the file is replaced).
        tensorboard_dir: folder for TensorBoard events, or None to skip.
        history: columns whose values it also keeps in memory, from the start of training
            (the kept rows of a resumed run included): ``history[key] = (iterations,
            values)``, for plotting without reading the file back.
    """

    def __init__(
        self,
        path: Path,
        resume_from: int = 0,
        tensorboard_dir: Path | None = None,
        history: tuple[str, ...] = (),
    ) -> None:
        self.path = Path(path)
        self.fields: list[str] | None = None
        self.history: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in history}
        if resume_from > 0 and self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                self.fields = list(reader.fieldnames or []) or None
                kept = [r for r in reader if _int(r.get("iteration")) <= resume_from]
            self._rewrite(kept)
            for row in kept:
                self._remember(_int(row.get("iteration")), row)
        elif self.path.exists():
            self.path.unlink()
        self._writer_tb: Any = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("tensorboard is not installed; metrics go to %s only", self.path)
            else:
                self._writer_tb = SummaryWriter(str(tensorboard_dir), purge_step=resume_from + 1)

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        if self.fields is None:
            return
        lines = [",".join(self.fields)]
        lines += [",".join(r.get(f, "") for f in self.fields) for r in rows]
        write_text_atomic(self.path, "\n".join(lines) + "\n")

    def _remember(self, iteration: int, values: Mapping[str, Any]) -> None:
        for key, (its, vals) in self.history.items():
            try:
                value = float(values[key])
            except (KeyError, TypeError, ValueError):  # not logged then (or an empty cell)
                continue
            its.append(float(iteration))
            vals.append(value)

    def log(self, iteration: int, values: dict[str, float]) -> None:
        self._remember(iteration, values)
        row = {"iteration": iteration, **values}
        if self.fields is None:
            self.fields = list(row)
            with open(self.path, "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerow(self.fields)
        elif any(key not in self.fields for key in row):
            # A column that starts later (the GAN's losses after --gan-start): widen the
            # header; the earlier rows leave it empty.
            with open(self.path, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            self.fields += [key for key in row if key not in self.fields]
            self._rewrite(rows)
        with open(self.path, "a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow([_fmt(row.get(f, "")) for f in self.fields])
        if self._writer_tb is not None:
            for key, value in values.items():
                self._writer_tb.add_scalar(key, value, iteration)

    def close(self) -> None:
        if self._writer_tb is not None:
            self._writer_tb.close()


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics CSV as floats (for tests and plotting)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)]


def _int(value: str | None) -> int:
    try:
        return int(float(value or 0))
    except ValueError:
        return 0


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


class Throughput:
    """Iterations and examples per second over a sliding window of recent steps.

    The first ``warmup`` steps are excluded (allocator, cudnn autotune, torch.compile).
    ``data_wait`` is the fraction of that time the loop spent waiting for the DataLoader:
    near 0 the model is the bottleneck; well above 0 the augmentation starves it (add
    ``--workers``).
    """

    def __init__(self, examples_per_step: int, window: int = 50, warmup: int = 2) -> None:
        self.examples_per_step = examples_per_step
        self.window = window
        self.warmup = warmup
        self._times: list[float] = []
        self._waits: list[float] = []
        self._seen = 0

    def add_wait(self, seconds: float) -> None:
        """Time the coming step spent waiting for its batch."""
        if self._seen >= self.warmup:
            self._waits.append(seconds)
            del self._waits[: -self.window]

    def tick(self) -> None:
        """Mark the end of a step."""
        self._seen += 1
        if self._seen > self.warmup:
            self._times.append(time.perf_counter())
            del self._times[: -self.window - 1]

    @property
    def data_wait(self) -> float:
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        waits = self._waits[-(len(self._times) - 1) :]
        return min(1.0, sum(waits) / max(span, 1e-9))

    @property
    def it_per_s(self) -> float:
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)

    @property
    def examples_per_s(self) -> float:
        return self.it_per_s * self.examples_per_step
