"""`faceswap train` from the command line: options, errors, SIGTERM and --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from faceswap import device
from faceswap.cli import cli
from faceswap.config import config_to_dict
from faceswap.train import checkpoint as ckpt
from faceswap.train.metrics import read_metrics

from .conftest import tiny_model_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def preset_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny32.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(tiny_model_config())))
    return path


def _args(face_dirs: tuple[Path, Path], model: Path, preset: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--a",
        str(face_dirs[0]),
        "--b",
        str(face_dirs[1]),
        "-m",
        str(model),
        "--preset",
        str(preset),
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--no-progress",
        "--no-tensorboard",
        *extra,
    ]


@pytest.mark.parametrize(("native_bf16", "amp"), [(False, "off"), (True, "bfloat16")])
def test_cli_trains_with_gpu_flags_on_cpu(
    face_dirs: tuple[Path, Path],
    tmp_path: Path,
    preset_yaml: Path,
    monkeypatch: pytest.MonkeyPatch,
    native_bf16: bool,
    amp: str,
) -> None:
    # --amp on the CPU: bf16 where the CPU has it natively, else float32 with a warning.
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: native_bf16)
    args = _args(
        face_dirs,
        tmp_path / "m",
        preset_yaml,
        "--iterations",
        "2",
        "--save-every",
        "2",
        "--amp",
        "--channels-last",
        "--mouth-weight",
        "1",
        "--device",
        "cpu",
        "--colour-transfer",
        "rct",
        "--uniform-yaw",
        "--gan",
        "hinge",
        "--gan-widths",
        "4,8",
        "--gan-norm",
        "instance",
    )
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "finished at iteration 2" in result.output
    saved = json.loads((tmp_path / "m" / "train_config.json").read_text())
    assert saved["augment"]["colour_transfer"] == "rct"
    assert saved["uniform_yaw"] is True
    assert (saved["disc_widths"], saved["disc_norm"]) == ([4, 8], "instance")
    disc = ckpt.list_checkpoints(tmp_path / "m")[-1][1] / "disc.safetensors"
    assert disc.is_file()  # a 2-conv PatchGAN was trained and saved
    card = json.loads((tmp_path / "m" / "model_card.json").read_text())
    assert card["training"]["amp"] == amp
    assert card["training"]["batch_size"] == 2


def test_cli_errors_are_one_line(
    face_dirs: tuple[Path, Path], tmp_path: Path, preset_yaml: Path
) -> None:
    missing = _args((tmp_path / "nowhere", face_dirs[1]), tmp_path / "m", preset_yaml)
    result = CliRunner().invoke(cli, missing)
    assert result.exit_code == 2
    assert result.output.startswith("faceswap: error: --a ")
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, _args(face_dirs, tmp_path / "m", Path("no-such-preset")))
    assert result.exit_code == 2 and "choose from" in result.output
    assert not (tmp_path / "m").exists()  # refused before anything was written
    bad = _args(face_dirs, tmp_path / "m", preset_yaml, "--gan-widths", "64,x")
    result = CliRunner().invoke(cli, bad)
    assert result.exit_code == 2 and "expected channel counts like 64,128,256" in result.output


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    # Its own process group, like a job in a terminal: a signal to the group also reaches
    # the DataLoader workers.
    return subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _wait_for_checkpoint(model: Path, after: int, proc: subprocess.Popen) -> int:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        found = ckpt.list_checkpoints(model)
        if found and found[-1][0] > after:
            return found[-1][0]
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint after iteration {after} (exit {proc.poll()})")


@pytest.mark.slow
def test_sigterm_and_sigkill_then_resume(
    face_dirs: tuple[Path, Path], tmp_path: Path, preset_yaml: Path
) -> None:
    model = tmp_path / "m"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "faceswap", *_args(face_dirs, model, preset_yaml)]
    base += ["--save-every", "3", "--log-every", "1"]
    # 1. SIGTERM to the process group (trainer and its worker processes): the trainer saves
    # a checkpoint at the current iteration and exits cleanly.
    proc = _start([*base, "--iterations", "100000", "--workers", "1"], env)
    try:
        _wait_for_checkpoint(model, 0, proc)
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    stopped_at = ckpt.list_checkpoints(model)[-1][0]
    assert stopped_at >= 3 and f"interrupted at iteration {stopped_at}" in out
    assert "loss_a" in out  # the losses of the last step are reported
    card = json.loads((model / "model_card.json").read_text())
    assert card["iteration"] == stopped_at  # inference weights saved at the stop too
    # 2. SIGKILL (no chance to save) some time after the next periodic checkpoint.
    proc = _start([*base, "--resume", "--iterations", "100000"], env)
    try:
        killed_after = _wait_for_checkpoint(model, stopped_at, proc)
        time.sleep(0.3)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    last_good = ckpt.list_checkpoints(model)[-1][0]
    assert last_good >= killed_after > stopped_at
    # 3. --resume continues from the newest complete checkpoint.
    resumed = subprocess.run(
        [*base, "--resume", "--iterations", str(last_good + 2)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"finished at iteration {last_good + 2} (2 this run" in resumed.stdout
    # Rows the killed run logged past its last checkpoint were dropped on resume.
    iters = [int(r["iteration"]) for r in read_metrics(model / "metrics.csv")]
    assert iters == list(range(1, last_good + 3))


def test_help_lists_every_loss_term() -> None:
    from faceswap.nets.losses import LOSSES

    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in LOSSES.names():
        assert name in text
    for option in ("--freeze", "--lr-warmup", "--loss"):
        assert option in text


def test_a_starved_run_says_to_raise_the_workers(
    face_dirs: tuple[Path, Path],
    tmp_path: Path,
    preset_yaml: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from faceswap.train import loop

    def starved(cfg: loop.TrainConfig) -> loop.TrainResult:  # the report, not the training
        return loop.TrainResult(
            model_dir=cfg.model_dir, start_iteration=0, iteration=10, interrupted=False,
            losses={"loss": 0.5}, checkpoint=cfg.model_dir / "c", seconds=1.0, it_per_s=10.0,
            data_wait=0.45, workers=2,
        )  # fmt: skip

    monkeypatch.setattr(loop, "run_train", starved)
    args = _args(face_dirs, tmp_path / "m", preset_yaml, "--iterations", "10")
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "waiting for data 45% of the time" in result.output
    assert "tip: the model waited for data 45% of the time: raise --workers (this run had 2 " in (
        result.stderr
    )


def test_masks_command_writes_the_hulls_to_paint_over(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    import cv2
    import numpy as np

    from faceswap.train.dataset import MASKS_DIR, face_masks, load_face_set

    folder = tmp_path / "faces"
    shutil.copytree(face_dirs[0], folder)
    runner = CliRunner()
    result = runner.invoke(cli, ["masks", str(folder)])
    assert result.exit_code == 0, result.output
    assert "wrote 10 hull masks" in result.output
    faces = load_face_set(folder, "A")
    assert sum(m is not None for m in faces.user_masks) == 10
    first = cv2.imread(str(faces.user_masks[0]), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(first, face_masks(faces.landmarks[0], 64, 64)[0])
    painted = np.zeros_like(first)  # a painted mask survives a second run
    cv2.imwrite(str(folder / MASKS_DIR / faces.files[0].name), painted)
    again = runner.invoke(cli, ["masks", str(folder)])
    assert "wrote 0 hull masks" in again.output and "kept 10" in again.output
    assert not cv2.imread(str(faces.user_masks[0]), cv2.IMREAD_UNCHANGED).any()
    # A folder-of-videos extract: each video's subfolder gets its own masks.
    takes = tmp_path / "takes"
    for name in ("one", "two"):
        shutil.copytree(face_dirs[1], takes / name)
    assert "wrote 20 hull masks" in runner.invoke(cli, ["masks", str(takes)]).output
    assert all(len(list((takes / n / MASKS_DIR).glob("*.png"))) == 10 for n in ("one", "two"))
    missing = runner.invoke(cli, ["masks", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "faces folder" in missing.output
    assert "Traceback" not in missing.output


def test_show_samples_says_where_and_trains_nothing(
    face_dirs: tuple[Path, Path], tmp_path: Path, preset_yaml: Path
) -> None:
    args = _args(face_dirs, tmp_path / "m", preset_yaml, "--show-samples")
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert f"wrote {tmp_path / 'm' / 'samples.png'}" in out.output
    assert "nothing was trained" in out.output and "checkpoint:" not in out.output
