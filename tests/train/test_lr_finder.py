"""The learning-rate range test: the curve, the suggestion, and the runs it starts."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from faceswap.cli import cli
from faceswap.config import config_to_dict
from faceswap.errors import FaceswapError
from faceswap.train import checkpoint as ckpt
from faceswap.train.loop import run_train
from faceswap.train.lr_finder import (
    diverged,
    lr_schedule,
    plot_lr_finder,
    smooth,
    smoothing,
    suggest_lr,
)

from .conftest import tiny_model_config
from .test_cli import _args
from .test_loop import _cfg


def test_schedule_and_smoothing() -> None:
    lrs = lr_schedule(300)
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(1e-1)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], lrs[1] / lrs[0])  # geometric
    # a third of a decade: about 16.6 steps of 300 over six decades
    assert smoothing(lrs) == pytest.approx(1 - 1 / (299 / 6 / 3), rel=1e-6)
    np.testing.assert_allclose(smooth([2.0] * 10, 0.9), 2.0)  # bias-corrected from step 0


def test_smooth_is_the_bias_corrected_average() -> None:
    # avg_1 = 0.5 * 1 = 0.5 -> 0.5 / 0.5 = 1; avg_2 = 0.25 + 1.5 = 1.75 -> 1.75 / 0.75
    np.testing.assert_allclose(smooth([1.0, 3.0], 0.5), [1.0, 1.75 / 0.75])


def test_the_suggestion_is_the_lowest_smoothed_loss_over_the_strength() -> None:
    lrs = lr_schedule(300)
    rng = np.random.default_rng(0)
    # the loss falls to its lowest at 1e-3, then climbs: a noisy U in log-rate
    losses = list((np.log10(lrs) + 3) ** 2 / 4 + 1 + rng.normal(0, 0.05, lrs.size))
    result = suggest_lr(list(lrs), losses, strength=10)
    smoothed = np.asarray(result.smoothed)
    assert result.best_lr == pytest.approx(lrs[int(np.argmin(smoothed))])
    assert 1e-3 <= result.best_lr < 1e-3 * 10 ** (1 / 3)  # lags the true low a little
    assert result.suggested == pytest.approx(result.best_lr / 10)
    assert suggest_lr(list(lrs), losses, strength=2.5).suggested == pytest.approx(
        result.best_lr / 2.5
    )


def test_a_blown_up_end_is_left_out_and_too_little_is_refused() -> None:
    lrs = list(lr_schedule(30))
    losses = [1.0 - 0.01 * i for i in range(28)] + [math.inf, math.nan]
    result = suggest_lr(lrs, losses)
    assert len(result.losses) == 28 and result.best_lr == pytest.approx(lrs[27])
    with pytest.raises(ValueError, match="two finite"):
        suggest_lr(lrs[:3], [math.nan] * 3)


def test_divergence_stops_the_test() -> None:
    assert diverged(np.array([1.0]), math.nan)
    rising = np.array([1.0] * 11 + [4.5])
    assert diverged(rising, 4.5)
    assert not diverged(np.array([1.0, 5.0]), 5.0)  # too early to tell
    assert not diverged(np.array([1.0] * 11 + [3.0]), 3.0)


def test_the_plot_marks_the_suggestion() -> None:
    lrs = list(lr_schedule(100))
    losses = list((np.log10(lrs) + 3) ** 2 / 4 + 1)
    result = suggest_lr(lrs, losses)
    img = plot_lr_finder(result)
    assert img.shape == (420, 720, 3) and img.dtype == np.uint8
    red = (img[..., 0] > 200) & (img[..., 1] < 80) & (img[..., 2] < 80)
    columns = np.flatnonzero(red[60:300].any(axis=0))
    # the suggestion's line: where its log-rate lies between the axes (70 .. 700 px)
    expected = 70 + (math.log10(result.suggested) + 7) / 6 * (720 - 70 - 20)
    assert columns.size and abs(columns.mean() - expected) <= 2
    blue = (img[..., 2] > 200) & (img[..., 0] < 80)
    assert blue.sum() > 300  # the smoothed curve is drawn


def _read_csv(path: Path) -> tuple[list[float], list[float]]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [float(r["lr"]) for r in rows], [float(r["loss"]) for r in rows]


def test_exit_reports_the_rate_and_leaves_no_model(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    model = tmp_path / "m"
    result = run_train(_cfg(face_dirs, model, lr_finder="exit", lr_finder_steps=40))
    assert result.lr_found is not None and result.checkpoint is None
    assert sorted(p.name for p in model.iterdir()) == ["lr_finder.csv", "lr_finder.png"]
    lrs, losses = _read_csv(model / "lr_finder.csv")
    assert 20 <= len(lrs) <= 40
    again = suggest_lr(lrs, losses, 10.0)
    assert result.lr_found == pytest.approx(again.suggested, rel=1e-4)  # csv: 6 digits
    assert cv2.imread(str(model / "lr_finder.png")) is not None
    # the folder holds no model: a training run starts there as in a new one
    done = run_train(_cfg(face_dirs, model, iterations=2, save_every=2))
    assert done.iteration == 2


def test_set_trains_as_a_run_given_that_rate(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    found = run_train(_cfg(face_dirs, tmp_path / "found", lr_finder="set", lr_finder_steps=30,
                           iterations=3, save_every=3))  # fmt: skip
    assert found.lr_found is not None and found.iteration == 3
    card = ckpt.read_card(tmp_path / "found")
    assert card["training"]["lr"] == found.lr_found
    assert card["training"]["lr_finder"]["strength"] == 10.0
    given = run_train(_cfg(face_dirs, tmp_path / "given", lr=found.lr_found, iterations=3,
                           save_every=3))  # fmt: skip
    # the range test ran on a copy, with the RNGs put back: the same weights to the bit
    a = load_file(str(tmp_path / "found" / "model.safetensors"))
    b = load_file(str(tmp_path / "given" / "model.safetensors"))
    assert given.lr_found is None
    assert all((a[k] == b[k]).all() for k in a)


def test_refusals(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(FaceswapError, match="choose from off, set, exit"):
        _cfg(face_dirs, tmp_path, lr_finder="auto")
    with pytest.raises(FaceswapError, match="drop --resume"):
        _cfg(face_dirs, tmp_path, lr_finder="set", resume=True)
    with pytest.raises(FaceswapError, match="at least 20"):
        _cfg(face_dirs, tmp_path, lr_finder="set", lr_finder_steps=5)


def test_cli_prints_the_suggestion(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    preset = tmp_path / "tiny32.yaml"
    preset.write_text(yaml.safe_dump(config_to_dict(tiny_model_config())))
    args = _args(face_dirs, tmp_path / "m", preset, "--lr-finder", "exit",
                 "--lr-finder-steps", "20")  # fmt: skip
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "lr finder: suggested --lr " in out.output and "checkpoint:" not in out.output
