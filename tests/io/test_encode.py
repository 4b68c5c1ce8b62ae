"""`faceswap encode-frames`: a folder of frames back into a video with the source's audio."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from faceswap.cli import cli
from faceswap.errors import FaceswapError
from faceswap.io.encode import EncodeFramesConfig, run_encode_frames
from faceswap.io.images import write_image
from faceswap.io.video import open_source, probe
from faceswap.provenance import read_manifest, read_provenance, write_manifest
from tests.media import ClipInfo, beep_onsets


def _frames_of(clip: Path, folder: Path) -> list[np.ndarray]:
    images = []
    for frame in open_source(clip).iter_frames():
        write_image(folder / f"{frame.name}.png", frame.image)
        images.append(frame.image)
    return images


def test_frames_come_back_with_the_originals_rate_and_audio_in_sync(
    clip_audio_late: ClipInfo, tmp_path: Path
) -> None:
    frames = _frames_of(clip_audio_late.path, tmp_path / "frames")
    out = tmp_path / "back.mp4"
    cfg = EncodeFramesConfig(input=tmp_path / "frames", output=out, like=clip_audio_late.path,
                             preset="ultrafast", progress=False)  # fmt: skip
    result = run_encode_frames(cfg)
    src, dst = probe(clip_audio_late.path), probe(out)
    assert result.frames == dst.frame_count == src.frame_count
    assert dst.fps == src.fps and result.fps == src.fps
    assert dst.audio_offset == pytest.approx(src.audio_offset, abs=0.002)
    np.testing.assert_allclose(
        beep_onsets(out) + dst.audio_offset,
        beep_onsets(clip_audio_late.path) + src.audio_offset,
        atol=0.003,
    )
    first = next(open_source(out).iter_frames()).image
    mse = np.mean((first.astype(float) - frames[0].astype(float)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 35
    # Plain frames are not claimed to be synthetic.
    assert read_provenance(out) == {} and result.manifest is None


def test_converted_frames_stay_marked_synthetic(clip_one_face: ClipInfo, tmp_path: Path) -> None:
    folder = tmp_path / "swapped"
    _frames_of(clip_one_face.path, folder)
    # The manifest convert writes beside an image-folder output.
    write_manifest(
        folder,
        model_sha256="ab" * 32,
        preset="tiny",
        input_path=clip_one_face.path,
        settings={"colour": "rct"},
        frames_total=48,
        frames_swapped=40,
        faces_swapped=40,
    )
    out = tmp_path / "swapped.mkv"
    result = run_encode_frames(
        EncodeFramesConfig(input=folder, output=out, fps="25", preset="ultrafast", progress=False)
    )
    tags = read_provenance(out)
    assert tags["synthetic"] == "1" and tags["model_sha256"] == "ab" * 32
    manifest = read_manifest(out)
    assert manifest is not None and result.manifest is not None
    assert manifest["frames"] == {"total": 48, "swapped": 40}
    assert manifest["settings"]["encoded_from"] == "swapped"
    assert manifest["settings"]["convert"] == {"colour": "rct"}
    assert not probe(out).has_audio


def test_frames_that_carry_tags_without_a_manifest_make_a_marked_video(tmp_path: Path) -> None:
    from faceswap.provenance import preview_tags, provenance_tags

    # Converted frames copied away from their manifest, and a training-preview timelapse.
    rng = np.random.default_rng(0)
    for name, tags in (("copied", provenance_tags("cd" * 32, preset="tiny")),
                       ("previews", preview_tags("tiny"))):  # fmt: skip
        folder = tmp_path / name
        for i in range(3):
            image = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
            write_image(folder / f"f_{i}.png", image, text=tags)
        out = tmp_path / f"{name}.mkv"
        run_encode_frames(EncodeFramesConfig(input=folder, output=out, fps="5",
                                             preset="ultrafast", progress=False))  # fmt: skip
        assert read_provenance(out) == tags
    untagged = tmp_path / "plain"
    write_image(untagged / "f_0.png", rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
    run_encode_frames(EncodeFramesConfig(input=untagged, output=tmp_path / "plain.mkv", fps="5",
                                         preset="ultrafast", progress=False))  # fmt: skip
    assert read_provenance(tmp_path / "plain.mkv") == {}


def test_bad_input_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    write_image(folder / "frame_000000.png", np.zeros((32, 48, 3), np.uint8))
    write_image(folder / "frame_000001.png", np.zeros((40, 48, 3), np.uint8))
    out = tmp_path / "o.mp4"
    with pytest.raises(FaceswapError, match="frame_000001 is 48x40, the first is 48x32"):
        run_encode_frames(EncodeFramesConfig(input=folder, output=out, fps=25, progress=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames"]
    with pytest.raises(FaceswapError, match=r"--like .* or a rate with --fps"):
        EncodeFramesConfig(input=folder, output=out)
    with pytest.raises(FaceswapError, match="not a frame rate"):
        EncodeFramesConfig(input=folder, output=out, fps="0")
    with pytest.raises(FaceswapError, match="outside the folder of frames"):
        run_encode_frames(EncodeFramesConfig(input=folder, output=folder / "o.mp4", fps=25))
    assert EncodeFramesConfig(input=folder, output=out, fps="30000/1001").fps == Fraction(
        30000, 1001
    )


def test_cli_one_line_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["encode-frames", str(tmp_path / "nope"), "-o", "o.mp4",
                                      "--fps", "25"])  # fmt: skip
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"faceswap: error: {tmp_path / 'nope'}: no such folder of frames; check the path"
    )
