"""Every stage, run as a user runs it: the `faceswap` CLI in a subprocess on generated clips.

extract A and B -> train a tiny model -> convert A's clip with B's decoder. Checks what a user
checks: the output has the input's frames, rate and audio, faces changed, face-free frames
did not, and the output says it is synthetic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from faceswap.faces.alignments import load_alignments
from faceswap.io.video import open_source, probe
from faceswap.provenance import read_provenance
from tests.media import make_clip

pytestmark = pytest.mark.slow


def faceswap_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-m", "faceswap", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )


def run_ok(*args: str | Path) -> str:
    proc = faceswap_cli(*args)
    assert proc.returncode == 0, f"faceswap {args[0]} failed:\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def test_extract_train_convert_round_trip(tmp_path: Path) -> None:
    blank = (0, 1, 20)
    clip_a = make_clip(
        tmp_path / "a.mp4",
        frames=24,
        fps=Fraction(30000, 1001),
        people=("astronaut",),
        audio=True,
        audio_offset=0.2,
        blank_frames=blank,
        seed=1,
    )
    clip_b = make_clip(tmp_path / "b.mp4", frames=24, people=("grace_hopper",), audio=False, seed=2)
    faces_a, faces_b, model = tmp_path / "faces_a", tmp_path / "faces_b", tmp_path / "model"

    for clip, faces in ((clip_a, faces_a), (clip_b, faces_b)):
        summary = run_ok(
            "extract",
            clip.path,
            "-o",
            faces,
            "--detector",
            "dlib-hog",
            "--size",
            "64",
            "--no-progress",
        )
        assert "frames" in summary
    alignments_a = load_alignments(faces_a / "alignments.json")
    found = [rec.index for rec in alignments_a.frames if rec.faces]
    expected = [i for i in range(clip_a.frame_count) if i not in blank]
    assert len(found) >= len(expected) - 1, f"faces found in frames {found}"
    assert not set(found) & set(blank)

    run_ok(
        "train",
        "--a",
        faces_a,
        "--b",
        faces_b,
        "-m",
        model,
        "--preset",
        "tiny",
        "--iterations",
        "12",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--save-every",
        "6",
        "--preview-every",
        "6",
        "--no-progress",
        "--no-tensorboard",
    )
    card = json.loads((model / "model_card.json").read_text())
    assert card["iteration"] == 12

    output = tmp_path / "swapped.mp4"
    run_ok(
        "convert",
        clip_a.path,
        "-m",
        model,
        "-a",
        faces_a,
        "-o",
        output,
        "--no-progress",
        "--crf",
        "12",
    )

    source, result = probe(clip_a.path), probe(output)
    assert result.frame_count == source.frame_count
    assert result.fps == source.fps
    assert result.duration == pytest.approx(source.duration, abs=1e-3)
    assert result.has_audio
    assert result.audio_offset == pytest.approx(source.audio_offset, abs=0.03)
    assert read_provenance(output), "the output carries no provenance tags"
    manifest = json.loads(output.with_name(output.name + ".json").read_text())
    assert manifest, "the sidecar manifest is empty"
    verdict = faceswap_cli("verify", output, "--json")
    assert verdict.returncode == 0, verdict.stderr
    assert json.loads(verdict.stdout)["watermark"]["found"], verdict.stdout
    assert faceswap_cli("verify", clip_a.path).returncode == 1  # the source is no swap

    before = [f.image.astype(np.int16) for f in open_source(clip_a.path).iter_frames()]
    after = [f.image.astype(np.int16) for f in open_source(output).iter_frames()]
    for index in range(source.frame_count):
        diff = np.abs(after[index] - before[index])
        if index in blank:
            # Untouched frames differ only by the re-encode.
            assert diff.mean() < 1.5, f"face-free frame {index} changed"
        elif index in found:
            x0, y0, x1, y1 = clip_a.faces[index][0].box.astype(int)
            outside = np.ones(diff.shape[:2], bool)
            outside[max(y0 - 40, 0) : y1 + 40, max(x0 - 40, 0) : x1 + 40] = False
            face_change, background_change = diff[y0:y1, x0:x1].mean(), diff[outside].mean()
            assert face_change > 3 * background_change + 2, (
                f"frame {index}: face changed {face_change:.2f}, background {background_change:.2f}"
            )


def test_bad_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("not a video")
    cases = [
        ("extract", tmp_path / "missing.mp4", "-o", tmp_path / "faces"),
        ("extract", not_a_video, "-o", tmp_path / "faces"),
        ("train", "--a", tmp_path / "none_a", "--b", tmp_path / "none_b", "-m", tmp_path / "m"),
        ("convert", not_a_video, "-m", tmp_path / "no_model", "-o", tmp_path / "out.mp4"),
    ]
    for args in cases:
        proc = faceswap_cli(*args)
        assert proc.returncode != 0, args
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("faceswap: error:"), proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out.mp4").exists()
