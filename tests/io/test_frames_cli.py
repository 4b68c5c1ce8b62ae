"""`faceswap extract-frames` through click's CliRunner and the stage function."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from faceswap.cli import cli
from faceswap.errors import FaceswapError
from faceswap.io.frames import ExtractFramesConfig, run_extract_frames
from faceswap.io.images import read_image
from tests.media import ClipInfo, ImageFolderInfo


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-9)))


def test_cli_every_nth_names_files_by_source_index(tmp_path: Path, clip_one_face: ClipInfo) -> None:
    out = tmp_path / "frames"
    result = CliRunner().invoke(
        cli,
        [
            *("extract-frames", str(clip_one_face.path), "-o", str(out)),
            *("--every-nth", "10", "--no-progress"),
        ],
    )
    assert result.exit_code == 0, result.output
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [f"frame_{i:06d}.png" for i in (0, 10, 20, 30, 40)]
    assert "wrote 5 of 48 frames" in result.output
    image = read_image(out / "frame_000030.png")
    assert _psnr(image, clip_one_face.scene.frame(30)) > 30
    saved = json.loads((out / "extract_frames.json").read_text())
    assert saved["every_nth"] == 10 and saved["format"] == "png"


def test_cli_start_and_jpg(tmp_path: Path, clip_with_blank_frames: ClipInfo) -> None:
    out = tmp_path / "jpgs"
    args = ["extract-frames", str(clip_with_blank_frames.path), "-o", str(out)]
    result = CliRunner().invoke(cli, [*args, "--start", "25", "--format", "jpg", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.jpg")) == [
        f"frame_{i:06d}.jpg" for i in range(25, 30)
    ]


def test_stage_on_image_folder_keeps_names(
    tmp_path: Path, image_folder_faces: ImageFolderInfo
) -> None:
    calls: list[tuple[int, int]] = []
    result = run_extract_frames(
        ExtractFramesConfig(input=image_folder_faces.path, output=tmp_path / "o", every_nth=5),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert result.frames_written == 3 and result.fps is None
    assert calls[-1] == (3, 3)
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == [
        "frame_000000.png",
        "frame_000005.png",
        "frame_000010.png",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--every-nth", "0"], "--every-nth must be 1 or more"),
        (["--start", "1000"], "past the last frame"),
    ],
)
def test_cli_bad_options(
    tmp_path: Path, clip_one_face: ClipInfo, args: list[str], message: str
) -> None:
    out = tmp_path / "o"
    result = CliRunner().invoke(
        cli, ["extract-frames", str(clip_one_face.path), "-o", str(out), *args, "--no-progress"]
    )
    assert result.exit_code == 2
    assert "faceswap: error: " in result.output and message in result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_cli_not_a_video(tmp_path: Path) -> None:
    fake = tmp_path / "notes.mp4"
    fake.write_text("hello\n" * 100)
    result = CliRunner().invoke(cli, ["extract-frames", str(fake), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "notes.mp4: not a readable video" in result.output
    assert not (tmp_path / "o").exists()


def test_config_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(FaceswapError, match="choose from png, jpg"):
        ExtractFramesConfig(input=tmp_path, output=tmp_path, format="gif")


def test_interrupted_dump_leaves_only_whole_frames(tmp_path: Path, clip_one_face: ClipInfo) -> None:
    class Stop(Exception):
        pass

    def stop_after_some(done: int, total: int) -> None:
        if done >= 3:
            raise Stop

    out = tmp_path / "o"
    with pytest.raises(Stop):
        run_extract_frames(
            ExtractFramesConfig(input=clip_one_face.path, output=out), progress=stop_after_some
        )
    names = sorted(p.name for p in out.iterdir())
    assert names and all(n.startswith("frame_") and n.endswith(".png") for n in names)
    for name in names:  # every file left is a whole, decodable frame
        index = int(name[6:12])
        assert _psnr(read_image(out / name), clip_one_face.scene.frame(index)) > 30


def test_dump_with_seek_names_and_content(tmp_path: Path) -> None:
    from tests.media import make_clip

    clip = make_clip(tmp_path / "gop.mkv", frames=60, gop=6, audio=False, width=320, height=192)
    out = tmp_path / "o"
    result = run_extract_frames(ExtractFramesConfig(clip.path, out, every_nth=7, start=33))
    assert result.frames_written == 4
    for index in (33, 40, 47, 54):
        image = read_image(out / f"frame_{index:06d}.png")
        assert _psnr(image, clip.scene.frame(index)) > _psnr(image, clip.scene.frame(index + 1))
        assert _psnr(image, clip.scene.frame(index)) > 30


def test_python_path_when_ffmpeg_cannot_write_atomically(
    tmp_path: Path, clip_with_blank_frames: ClipInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faceswap.io.frames as frames_module

    monkeypatch.setattr(frames_module, "muxer_options", lambda muxer: "")
    out = tmp_path / "o"
    cfg = ExtractFramesConfig(clip_with_blank_frames.path, out, every_nth=9, start=2)
    result = run_extract_frames(cfg)
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == [f"frame_{i:06d}.png" for i in (2, 11, 20, 29)] and result.frames_written == 4
    image = read_image(out / "frame_000020.png")
    assert _psnr(image, clip_with_blank_frames.scene.frame(20)) > 30


def test_folder_of_videos_gets_a_subfolder_each(
    tmp_path: Path, clip_with_blank_frames: ClipInfo
) -> None:
    import shutil

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(clip_with_blank_frames.path, videos / "take2.mp4")
    shutil.copy(clip_with_blank_frames.path, videos / "take10.mp4")
    out = tmp_path / "o"
    result = CliRunner().invoke(
        cli, ["extract-frames", str(videos), "-o", str(out), "--every-nth", "10", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    calls: list[tuple[int, int]] = []
    run_extract_frames(
        ExtractFramesConfig(videos, tmp_path / "again", every_nth=10),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls[-1] == (6, 6) and [c[0] for c in calls] == sorted(c[0] for c in calls)
    assert "of 2 videos" in result.output
    for stem in ("take2", "take10"):
        names = sorted(p.name for p in (out / stem).glob("*.png"))
        assert names == ["frame_000000.png", "frame_000010.png", "frame_000020.png"]


def test_rerun_resumes_from_the_first_missing_frame(
    tmp_path: Path, clip_with_blank_frames: ClipInfo
) -> None:
    out = tmp_path / "o"
    cfg = ExtractFramesConfig(clip_with_blank_frames.path, out, every_nth=3)
    assert run_extract_frames(cfg).frames_written == 10
    for index in (21, 27):
        (out / f"frame_{index:06d}.png").unlink()
    marker = (out / "frame_000003.png").stat().st_mtime_ns
    again = run_extract_frames(cfg)
    assert (again.frames_written, again.kept) == (3, 7)  # 21, 24, 27 from the first gap
    assert (out / "frame_000003.png").stat().st_mtime_ns == marker
    image = read_image(out / "frame_000027.png")
    assert _psnr(image, clip_with_blank_frames.scene.frame(27)) > 30
    done = run_extract_frames(cfg)
    assert (done.frames_written, done.kept) == (0, 10)
    fresh = CliRunner().invoke(
        cli,
        [
            *("extract-frames", str(clip_with_blank_frames.path), "-o", str(out)),
            *("--every-nth", "3", "--overwrite", "--no-progress"),
        ],
    )
    assert fresh.exit_code == 0 and "wrote 10 of 30" in fresh.output


def test_resume_refuses_another_input(tmp_path: Path, clip_with_blank_frames: ClipInfo) -> None:
    out = tmp_path / "o"
    run_extract_frames(ExtractFramesConfig(clip_with_blank_frames.path, out, every_nth=10))
    with pytest.raises(FaceswapError, match=r"another run.*--overwrite"):
        run_extract_frames(ExtractFramesConfig(clip_with_blank_frames.path, out, every_nth=5))
    again = run_extract_frames(
        ExtractFramesConfig(clip_with_blank_frames.path, out, every_nth=5, resume=False)
    )
    assert again.frames_written == 6


@pytest.mark.parametrize("path", ["ffmpeg", "python"])
def test_a_10_bit_video_gives_16_bit_pngs(
    tmp_path: Path, clip_one_face: ClipInfo, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    import subprocess

    import faceswap.io.frames as frames_module
    from faceswap.io.ffmpeg_bin import find_ffmpeg
    from faceswap.io.video import open_source

    if path == "python":
        monkeypatch.setattr(frames_module, "muxer_options", lambda muxer: "")
    ten = tmp_path / "ten.mkv"
    args = [find_ffmpeg(), "-v", "error", "-i", str(clip_one_face.path), "-frames:v", "3"]
    args += ["-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p10le", "-an", str(ten)]
    subprocess.run(args, check=True)
    decoded = [f.image for f in open_source(ten, deep=True).iter_frames()]
    assert decoded[0].dtype == np.uint16
    run_extract_frames(ExtractFramesConfig(ten, tmp_path / "deep"))
    image = read_image(tmp_path / "deep" / "frame_000001.png", keep_16bit=True)
    assert image.dtype == np.uint16
    # What convert decodes, to within a 10-bit level (ffmpeg's PNG path converts itself).
    assert np.abs(image.astype(int) - decoded[1]).max() <= 64
    assert len(np.unique(image % 257)) > 16  # the low bits are there, not 8 bits widened
    run_extract_frames(ExtractFramesConfig(ten, tmp_path / "flat", bit_depth="8"))
    assert read_image(tmp_path / "flat" / "frame_000001.png", keep_16bit=True).dtype == np.uint8
    with pytest.raises(FaceswapError, match="another run"):  # one folder, one depth
        run_extract_frames(ExtractFramesConfig(ten, tmp_path / "deep", bit_depth="8"))
