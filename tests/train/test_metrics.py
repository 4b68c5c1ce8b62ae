"""The metrics CSV: columns that start later, and resumed runs."""

from __future__ import annotations

from pathlib import Path

from faceswap.train.metrics import MetricsLog, read_metrics


def test_a_column_that_starts_later_widens_the_header(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path)
    log.log(10, {"loss": 2.0})
    log.log(20, {"loss": 1.5, "d_loss": 0.7})  # e.g. the GAN after --gan-start
    log.log(30, {"loss": 1.2})
    log.close()
    assert path.read_text().splitlines()[0] == "iteration,loss,d_loss"
    assert read_metrics(path) == [
        {"iteration": 10, "loss": 2.0},
        {"iteration": 20, "loss": 1.5, "d_loss": 0.7},
        {"iteration": 30, "loss": 1.2},
    ]


def test_resume_drops_rows_past_the_checkpoint_and_keeps_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    first = MetricsLog(path)
    for it in (10, 20, 30):
        first.log(it, {"loss": 1.0 / it, "d_loss": 0.5})
    first.close()
    resumed = MetricsLog(path, resume_from=20)
    resumed.log(30, {"loss": 0.01, "d_loss": 0.4})
    resumed.close()
    rows = read_metrics(path)
    assert [r["iteration"] for r in rows] == [10, 20, 30]
    assert rows[-1] == {"iteration": 30, "loss": 0.01, "d_loss": 0.4}
