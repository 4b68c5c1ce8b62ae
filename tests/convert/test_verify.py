"""`faceswap verify` reads back every mark convert leaves, and no mark on real footage."""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from faceswap.cli import cli
from faceswap.convert.pipeline import ConvertConfig, run_convert
from faceswap.errors import FaceswapError
from faceswap.io.ffmpeg_bin import find_ffmpeg
from faceswap.io.images import read_image, write_image
from faceswap.verify import VerifyConfig, run_verify
from tests.convert.conftest import truth_alignments
from tests.media import ClipInfo, make_image_folder


def _convert(clip: Path, model: Path, out: Path, **kw: object) -> Path:
    cfg = ConvertConfig(input=clip, model_dir=model, output=out, progress=False, device="cpu",
                        preset="ultrafast", batch_size=4, **kw)  # type: ignore[arg-type]  # fmt: skip
    return run_convert(cfg).output


@pytest.fixture(scope="module")
def converted(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path_factory
) -> Path:
    out = tmp_path_factory.mktemp("verify") / "swap.mp4"
    return _convert(short_clip.path, model_dir, out, alignments=short_alignments)


def test_finds_tags_manifest_and_watermark(converted: Path, short_clip: ClipInfo) -> None:
    result = run_verify(VerifyConfig(converted))
    assert result.marked
    assert result.tags["synthetic"] == "1" and len(result.tags["model_sha256"]) == 64
    assert result.manifest is not None and result.manifest["tool"] == "faceswap"
    mark = result.watermark
    assert mark.found and mark.frames == 16
    # The faceless frames carry no mark; every swapped one does.
    assert mark.marked_frames == 16 - len(short_clip.blank_frames)
    assert all(mark.frame_z[i] < 3 for i in short_clip.blank_frames)


def test_real_footage_has_no_mark(short_clip: ClipInfo) -> None:
    result = run_verify(VerifyConfig(short_clip.path))
    assert not result.marked and result.tags == {} and result.manifest is None
    assert result.watermark.z < 4 and result.watermark.faces > 0


def test_the_watermark_outlives_a_reencode_that_drops_tags_and_manifest(
    converted: Path, tmp_path: Path
) -> None:
    laundered = tmp_path / "reupload.mp4"
    args = [find_ffmpeg(), "-v", "error", "-nostdin", "-i", str(converted)]
    args += ["-map_metadata", "-1", "-c:v", "libx264", "-crf", "23", "-preset", "veryfast"]
    args += ["-an", str(laundered)]
    subprocess.run(args, check=True)
    result = run_verify(VerifyConfig(laundered, frames=8))
    assert result.tags == {} and result.manifest is None
    assert result.watermark.frames == 8 and result.watermark.found and result.marked
    assert not result.watermark.mirrored
    # Flipped left to right as well, as re-uploads often are.
    mirrored = tmp_path / "mirrored.mp4"
    subprocess.run([*args[:-2], "-vf", "hflip", "-an", str(mirrored)], check=True)
    result = run_verify(VerifyConfig(mirrored, frames=8))
    assert result.watermark.found and result.watermark.mirrored, result.watermark


def test_images_and_image_folders(model_dir: Path, tmp_path: Path) -> None:
    info = make_image_folder(tmp_path / "frames", 3, people=("grace_hopper",), seed=3)

    class _Clip:  # truth_alignments only reads these
        path = info.path
        faces = info.faces
        fps = 1
        frame_count = 3
        height, width = read_image(info.files[0]).shape[:2]

    al = truth_alignments(_Clip, tmp_path / "alignments.json")  # type: ignore[arg-type]
    folder = _convert(info.path, model_dir, tmp_path / "swapped", alignments=al)
    found = run_verify(VerifyConfig(folder))
    assert found.marked and found.tags["synthetic"] == "1" and found.manifest is not None
    assert found.watermark.frames == 3 and found.watermark.found

    # One frame taken out of the folder and saved again without its tags: the pixels tell.
    frame = read_image(sorted(folder.iterdir())[0])
    bare = write_image(tmp_path / "bare.png", frame)
    alone = run_verify(VerifyConfig(bare))
    assert alone.tags == {} and alone.manifest is None
    assert alone.watermark.frames == 1 and alone.marked, alone.watermark

    original = run_verify(VerifyConfig(info.files[0]))
    assert not original.marked


def test_cli_exit_codes_and_json(converted: Path, short_clip: ClipInfo) -> None:
    marked = CliRunner().invoke(cli, ["verify", str(converted)])
    assert marked.exit_code == 0, marked.output
    assert marked.output.startswith(f"{converted}: synthetic: made with faceswap (tags, manifest")
    assert "watermark: found" in marked.output
    real = CliRunner().invoke(cli, ["verify", str(short_clip.path), "--json", "--frames", "4"])
    assert real.exit_code == 1, real.output
    data = json.loads(real.output)
    assert data["marked"] is False and data["tags"] == {} and data["manifest"] is False
    assert data["watermark"]["frames"] == 4 and data["watermark"]["found"] is False


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("missing.mp4", None, "missing.mp4: no such file or folder"),
        ("empty.mp4", b"", "empty.mp4"),
        ("noise.png", b"\x89PNG junk", "noise.png: not a readable image"),
    ],
    ids=["missing", "empty", "corrupt-image"],
)
def test_bad_input_is_one_line(tmp_path: Path, name: str, data: bytes | None, message: str) -> None:
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    result = CliRunner().invoke(cli, ["verify", str(path)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("faceswap: error: ") and message in lines[0]
    assert "Traceback" not in result.output + result.stderr


def test_rejects_a_negative_frame_count(short_clip: ClipInfo) -> None:
    with pytest.raises(FaceswapError, match="--frames"):
        VerifyConfig(short_clip.path, frames=-1)
    assert np.isfinite(run_verify(VerifyConfig(short_clip.path, frames=1)).watermark.z)


def test_a_folder_of_videos_gets_a_report_each(
    converted: Path, short_clip: ClipInfo, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "uploads"
    folder.mkdir()
    shutil.copy(converted, folder / "a_swap.mp4")  # the manifest stays behind: pixels, tags
    shutil.copy(short_clip.path, folder / "b_real.mp4")
    args = ["verify", str(folder), "--frames", "6", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output  # one of them is marked
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["input"]).name for r in reports] == ["a_swap.mp4", "b_real.mp4"]
    assert [r["marked"] for r in reports] == [True, False]
    assert reports[0]["watermark"]["found"] and not reports[0]["manifest"]

    (folder / "c_broken.mp4").write_bytes(b"not a video")
    broken = CliRunner().invoke(cli, args)
    assert broken.exit_code == 2  # reported, the others still read
    assert len(broken.stdout.splitlines()) == 2
    (line,) = broken.stderr.strip().splitlines()
    assert line.startswith("faceswap: error: ") and "c_broken.mp4" in line


def test_found_in_a_downscaled_output(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    # convert marks the full-size frame, then scales it: the field scales with it.
    half = _convert(short_clip.path, model_dir, tmp_path / "half.mp4",
                    alignments=short_alignments, output_scale=50.0)  # fmt: skip
    result = run_verify(VerifyConfig(half))
    assert result.watermark.found, result.watermark


def _marked_scene(path: Path, mark: bool = True) -> Path:
    """The test scene's real face (a detector finds it; the fixture model's faces are not
    faces yet), marked under its matte as convert does (or not), losslessly."""
    import cv2

    from faceswap.faces.align import landmark_region
    from faceswap.io.video import VideoWriter
    from faceswap.watermark import Watermark
    from tests.media import Scene

    scene = Scene(frames=24, seed=2)
    with VideoWriter(path, 640, 360, Fraction(25), codec="ffv1") as writer:
        for i in range(scene.frames):
            points = np.stack([face.landmarks for face in scene.faces(i)])
            matte = cv2.GaussianBlur(landmark_region((360, 640), points).astype(np.uint8) * 255,
                                     (0, 0), 3)  # fmt: skip
            writer.write(Watermark()(scene.frame(i), i, matte) if mark else scene.frame(i))
    return path


def test_found_in_a_letterboxed_copy(tmp_path: Path) -> None:
    # Made for a phone: the 16:9 video in the middle of a 9:16 frame, black above and below.
    for marked in (True, False):
        scene = _marked_scene(tmp_path / "scene.mkv", mark=marked)
        boxed = tmp_path / "boxed.mp4"
        pad = ["-vf", "pad=640:1138:0:389:black", "-c:v", "libx264", "-crf", "23"]
        args = [find_ffmpeg(), "-y", "-v", "error", "-nostdin", "-i", str(scene), *pad, str(boxed)]
        subprocess.run(args, check=True)
        mark = run_verify(VerifyConfig(boxed)).watermark
        if not marked:
            assert not mark.found and mark.faces > 0, mark
            continue
        assert mark.found and mark.picture == (389, 749, 0, 640), mark
        output = CliRunner().invoke(cli, ["verify", str(boxed)]).output
        assert "in black bars: a 640x360 picture inside the frame" in output


def test_found_in_a_copy_cropped_off_centre(tmp_path: Path) -> None:
    # Re-framed to 4:3 by someone else.
    marked = _marked_scene(tmp_path / "marked.mkv")
    cropped = tmp_path / "cropped.mp4"
    args = [find_ffmpeg(), "-v", "error", "-nostdin", "-i", str(marked), "-vf",
            "crop=480:360:40:0", "-c:v", "libx264", "-crf", "23", str(cropped)]  # fmt: skip
    subprocess.run(args, check=True)
    result = run_verify(VerifyConfig(cropped))
    mark = result.watermark
    assert mark.faces > 0 and mark.found and result.marked, mark
    assert mark.shift == pytest.approx((40 + 240 - 320) / 360, abs=2 / 360)
    output = CliRunner().invoke(cli, ["verify", str(cropped)]).output
    assert "cropped off-centre: this frame's centre 0.11 heights left" in output
