"""`faceswap evaluate`: each measure responds to the defect it is meant to catch."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from faceswap.cli import cli
from faceswap.errors import FaceswapError
from faceswap.evaluate import EvaluateConfig, eye_distance, run_evaluate
from faceswap.faces.align import landmark_region
from faceswap.io.images import write_image
from faceswap.io.video import VideoWriter, open_source
from tests.media import ClipInfo, face_photo


def _remake(clip: ClipInfo, path: Path, change: Callable[[int, np.ndarray], np.ndarray]) -> Path:
    """A lossless copy of ``clip`` with ``change(index, frame)`` applied to each frame."""
    with VideoWriter(path, clip.width, clip.height, clip.fps, codec="ffv1") as writer:
        for frame in open_source(clip.path).iter_frames():
            writer.write(change(frame.index, np.array(frame.image)))
    return path


def _evaluate(clip: ClipInfo, swapped: Path, **kw: object) -> object:
    return run_evaluate(EvaluateConfig(swapped=swapped, source=clip.path, frames=8, **kw))  # type: ignore[arg-type]


def _iod(clip: ClipInfo) -> float:
    return float(np.median([eye_distance(f[0].landmarks) for f in clip.faces if f]))


def test_the_source_against_itself_is_perfect(clip_one_face: ClipInfo, tmp_path: Path) -> None:
    photo = write_image(tmp_path / "grace.png", np.array(face_photo("grace_hopper")))
    result = _evaluate(clip_one_face, clip_one_face.path, refs_b=(photo,))
    assert result.frames == 8 and result.faces_kept == result.source_faces == 8
    assert result.distance_to_a == 0.0 and result.landmark_error == 0.0 and result.jitter == 0.0
    assert result.flicker == 0.0
    assert result.sharpness == 1.0 and result.background_psnr == math.inf
    # Someone else's photos: far from B, and never nearer B than A.
    assert result.distance_to_b is not None and result.distance_to_b > 0.6
    assert result.closer_to_b == 0.0


def test_blur_and_background_noise_show(clip_one_face: ClipInfo, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)

    def degrade(index: int, frame: np.ndarray) -> np.ndarray:
        points = np.stack([f.landmarks for f in clip_one_face.faces[index]])
        out = frame.astype(np.float32)
        inside = landmark_region(frame.shape, points, 0.0)
        out[inside] = cv2.GaussianBlur(frame, (0, 0), 2.5).astype(np.float32)[inside]
        # Noise of sigma 4 away from the faces: a PSNR of 20 log10(255 / 4) = 36.1 dB there
        # (a little more over all that evaluate counts as outside, which includes a clean
        # ring around each face).
        away = ~landmark_region(frame.shape, points, 0.5)
        out[away] += rng.normal(0.0, 4.0, frame.shape).astype(np.float32)[away]
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    result = _evaluate(clip_one_face, _remake(clip_one_face, tmp_path / "soft.mkv", degrade))
    assert result.faces_kept == result.source_faces == 8
    assert result.sharpness is not None and result.sharpness < 0.5
    assert result.background_psnr is not None and 36.0 < result.background_psnr < 37.5
    assert result.distance_to_a is not None and result.distance_to_a < 0.6  # still A


def test_jitter_and_landmark_error_show(clip_one_face: ClipInfo, tmp_path: Path) -> None:
    shift = 4.0

    def wobble(index: int, frame: np.ndarray) -> np.ndarray:
        if index % 2 == 0:
            return frame
        move = np.float32([[1, 0, shift], [0, 1, 0]])
        return cv2.warpAffine(frame, move, frame.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)

    result = _evaluate(clip_one_face, _remake(clip_one_face, tmp_path / "wobble.mkv", wobble))
    expected = shift / _iod(clip_one_face)
    assert result.jitter == pytest.approx(expected, rel=0.35)
    # Half the frames are moved by the shift, half not at all.
    steady = _evaluate(clip_one_face, clip_one_face.path)
    assert result.landmark_error is not None and steady.landmark_error == 0.0
    assert result.landmark_error <= expected * 1.35


def test_flicker_shows_a_face_whose_brightness_pulses(
    clip_one_face: ClipInfo, tmp_path: Path
) -> None:
    pulse = 6.0  # every other frame's face 6 code values brighter

    def pulsing(index: int, frame: np.ndarray) -> np.ndarray:
        if index % 2 == 0:
            return frame
        points = np.stack([f.landmarks for f in clip_one_face.faces[index]])
        out = frame.astype(np.float32)
        out[landmark_region(frame.shape, points, 0.3)] += pulse
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    result = _evaluate(clip_one_face, _remake(clip_one_face, tmp_path / "pulse.mkv", pulsing))
    assert result.flicker == pytest.approx(pulse, rel=0.2)
    # A steady change of brightness is a grade, not flicker.
    brighter = _remake(
        clip_one_face,
        tmp_path / "bright.mkv",
        lambda i, frame: np.clip(frame.astype(np.int16) + 6, 0, 255).astype(np.uint8),
    )
    steady = _evaluate(clip_one_face, brighter)
    assert steady.flicker is not None and steady.flicker < 1.0


def test_wrong_inputs_are_one_line(
    clip_one_face: ClipInfo, clip_with_blank_frames: ClipInfo, tmp_path: Path
) -> None:
    with pytest.raises(FaceswapError, match="evaluate compares frame by frame"):
        run_evaluate(EvaluateConfig(clip_with_blank_frames.path, clip_one_face.path))
    with pytest.raises(FaceswapError, match="no such file or folder"):
        run_evaluate(EvaluateConfig(tmp_path / "none.mp4", clip_one_face.path))
    with pytest.raises(FaceswapError, match="--frames"):
        EvaluateConfig(clip_one_face.path, clip_one_face.path, frames=-2)
    result = CliRunner().invoke(
        cli, ["evaluate", str(tmp_path / "none.mp4"), "--source", str(clip_one_face.path)]
    )
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_cli_prints_the_measures_and_writes_json(clip_one_face: ClipInfo, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    args = ["evaluate", str(clip_one_face.path), "--source", str(clip_one_face.path)]
    result = CliRunner().invoke(cli, [*args, "--frames", "4", "-o", str(report)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1].strip().startswith("faces kept:  4 of 4 (100.0 %)")
    assert "background:  identical outside the faces" in result.output
    assert "flicker:     0.00 code values" in result.output
    saved = json.loads(report.read_text())
    assert saved["faces_kept"] == 4 and saved["background_psnr"] == "inf"
    assert [row["frame"] for row in saved["per_frame"]] == sorted(
        r["frame"] for r in saved["per_frame"]
    )
    as_json = CliRunner().invoke(cli, [*args, "--frames", "2", "--json"])
    assert json.loads(as_json.output)["frames"] == 2
