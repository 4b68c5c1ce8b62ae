"""The learned detector of swapped faces: it learns a swap's traces and flags them on video."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from faceswap.cli import cli
from faceswap.errors import FaceswapError
from faceswap.extract import ExtractConfig, run_extract
from faceswap.faces.align import landmark_region
from faceswap.forensics import (
    DetectFakesConfig,
    DetectorTrainConfig,
    auc_score,
    load_detector,
    run_detect_fakes,
    run_train_detector,
)
from faceswap.io.video import VideoWriter, open_source
from faceswap.nets.fakenet import FakeNet, FakeNetConfig
from tests.media import ClipInfo, make_clip


def test_network_shapes_and_gradients() -> None:
    net = FakeNet(FakeNetConfig(32, (4, 8)))
    logits = net(torch.rand(3, 3, 32, 32))
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(FaceswapError, match="too small"):
        FakeNetConfig(8, (4, 8, 16, 32))


def test_auc() -> None:
    labels = np.array([0, 0, 1, 1])
    assert auc_score(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 1.0
    assert auc_score(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 0.0
    assert auc_score(np.array([0.5, 0.5, 0.5, 0.5]), labels) == 0.5


def _poor_swap(clip: ClipInfo, path: Path) -> Path:
    """``clip`` with each face softened and tinted, as a badly blended swap looks."""
    with VideoWriter(path, clip.width, clip.height, clip.fps, preset="ultrafast") as writer:
        for frame in open_source(clip.path).iter_frames():
            image = np.array(frame.image)
            faces = clip.faces[frame.index]
            if faces:
                inside = landmark_region(image.shape, np.stack([f.landmarks for f in faces]), 0)
                soft = cv2.GaussianBlur(image, (0, 0), 2.0).astype(np.float32)
                soft *= np.float32([1.08, 0.97, 0.92])
                image[inside] = np.clip(soft[inside], 0, 255).astype(np.uint8)
            writer.write(image)
    return path


def _faces(video: Path, out: Path) -> Path:
    run_extract(
        ExtractConfig(input=video, output=out, detector="dlib-hog", size=64, progress=False)
    )
    return out


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("forensics")
    out: dict[str, Path] = {}
    for name, seed in (("train", 1), ("other", 7)):
        clip = make_clip(root / f"{name}.mp4", frames=24, audio=False, seed=seed)
        fake = _poor_swap(clip, root / f"{name}_swap.mp4")
        out[f"{name}_video"], out[f"{name}_swap_video"] = clip.path, fake
        out[f"{name}_real"] = _faces(clip.path, root / f"{name}_real")
        out[f"{name}_fake"] = _faces(fake, root / f"{name}_fake")
    return out


@pytest.mark.slow
def test_learns_the_swap_and_flags_it(folders: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "detector"
    cfg = DetectorTrainConfig(
        real=(folders["train_real"],), fake=(folders["train_fake"],), model_dir=model,
        resolution=32, widths=(8, 16, 32), iterations=150, batch_size=16, device="cpu",
        validate_real=(folders["other_real"],), validate_fake=(folders["other_fake"],),
    )  # fmt: skip
    result = run_train_detector(cfg)
    # Measured on faces of another clip it never saw.
    assert result.accuracy >= 0.9 and result.auc >= 0.95, result
    card = json.loads((model / "detector.json").read_text())
    assert card["validation"]["on"] == "held-out folders" and card["crop"]["size"] == 64
    net, crop = load_detector(model)
    assert crop.size == 64 and net.config.resolution == 32

    swap = run_detect_fakes(
        DetectFakesConfig(folders["other_swap_video"], model, frames=12, device="cpu")
    )
    real = run_detect_fakes(
        DetectFakesConfig(folders["other_video"], model, frames=12, device="cpu")
    )
    assert swap.swapped and swap.frames == 12 and len(swap.scores) >= 10
    assert not real.swapped and real.flagged <= 1

    runner = CliRunner()
    flagged = runner.invoke(
        cli, ["detect-fakes", str(folders["other_swap_video"]), "-m", str(model), "--frames", "4"]
    )
    assert flagged.exit_code == 0 and "likely swapped" in flagged.output, flagged.output
    clean = runner.invoke(
        cli,
        ["detect-fakes", str(folders["other_video"]), "-m", str(model), "--frames", "4", "--json"],
    )
    assert clean.exit_code == 1 and json.loads(clean.output)["swapped"] is False

    # A folder of videos: a line each.
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    for name in ("other_swap_video", "other_video"):
        (uploads / folders[name].name).write_bytes(folders[name].read_bytes())
    batch = runner.invoke(cli, ["detect-fakes", str(uploads), "-m", str(model), "--frames", "4"])
    assert batch.exit_code == 0, batch.output
    lines = batch.stdout.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["no swap detected", "likely swapped"]


def test_bad_inputs_are_one_line(folders: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(FaceswapError, match="given as --real and as --fake"):
        run_train_detector(
            DetectorTrainConfig((folders["train_real"],), (folders["train_real"],), tmp_path / "d")
        )
    with pytest.raises(FaceswapError, match="--validate-real and --validate-fake together"):
        DetectorTrainConfig((Path("a"),), (Path("b"),), tmp_path, validate_real=(Path("c"),))
    with pytest.raises(FaceswapError, match=r"no detector\.json"):
        load_detector(tmp_path)
    result = CliRunner().invoke(
        cli, ["detect-fakes", str(folders["train_video"]), "-m", str(tmp_path / "none")]
    )
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    result = CliRunner().invoke(
        cli,
        [
            "train-detector",
            "--real",
            str(tmp_path / "x"),
            "--fake",
            str(folders["train_fake"]),
            "-m",
            str(tmp_path / "m"),
        ],
    )
    assert result.exit_code == 2 and "--real" in result.stderr and "no such folder" in result.stderr
    assert not (tmp_path / "m").exists()
