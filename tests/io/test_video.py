"""Video probe, reading and writing against clips with known content (tests/media.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from faceswap.errors import FaceswapError
from faceswap.io.ffmpeg_bin import find_ffmpeg
from faceswap.io.video import (
    FrameSource,
    VideoSource,
    VideoWriter,
    available_encoders,
    list_inputs,
    open_source,
    parse_framecrc,
    parse_probe_output,
    probe,
)
from tests.media import BEEP_PERIOD, ClipInfo, beep_onsets, make_clip


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-9)))


def _audio_samples(path: Path) -> int:
    # Decoded with ffmpeg directly, not with the code under test.
    args = [find_ffmpeg(), "-v", "error", "-i", str(path), "-map", "0:a:0"]
    args += ["-ac", "1", "-ar", "48000", "-f", "s16le", "-"]
    return len(subprocess.run(args, capture_output=True, check=True).stdout) // 2


# ----------------------------------------------------------------------------- probe


def test_probe_one_face_clip(clip_one_face: ClipInfo) -> None:
    info = probe(clip_one_face.path)
    assert (info.width, info.height) == (640, 360)
    assert info.fps == Fraction(25) and isinstance(info.fps, Fraction)
    assert info.frame_count == 48
    assert info.duration == pytest.approx(48 / 25)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.rotation == 0
    assert info.has_audio and len(info.audio) == 1
    assert info.audio[0].codec == "aac"
    assert info.audio[0].sample_rate == 48000 and info.audio[0].channels == 1
    assert info.frame_times[:3] == pytest.approx((0.0, 0.04, 0.08))


def test_probe_ntsc_rate_is_exact(clip_with_blank_frames: ClipInfo) -> None:
    info = probe(clip_with_blank_frames.path)
    assert info.fps == Fraction(30000, 1001)
    assert info.frame_count == 30
    assert info.duration == pytest.approx(30 * 1001 / 30000)
    assert not info.has_audio and info.audio_offset is None


def test_probe_audio_start_offsets(clip_audio_late: ClipInfo, clip_audio_early: ClipInfo) -> None:
    # AAC priming (1024 samples = 21 ms) makes a file's audio start up to that much early.
    late = probe(clip_audio_late.path)
    assert late.audio_offset == pytest.approx(0.5, abs=0.025)
    early = probe(clip_audio_early.path)
    assert early.audio_offset == pytest.approx(-0.3, abs=0.025)
    assert early.start_time > early.audio[0].start_time


def test_probe_offsets_match_the_beeps(clip_audio_late: ClipInfo) -> None:
    # Beeps sit on multiples of BEEP_PERIOD on the video clock when the offset is right.
    info = probe(clip_audio_late.path)
    onsets = beep_onsets(info.path) + info.audio_offset
    assert len(onsets) >= 2
    phase = (onsets + 0.25 * BEEP_PERIOD) % BEEP_PERIOD - 0.25 * BEEP_PERIOD
    assert np.abs(phase).max() < 0.005


def test_probe_rotation(clip_rotated: ClipInfo) -> None:
    info = probe(clip_rotated.path)
    assert info.rotation == 90
    assert (info.width, info.height) == (192, 320)


def test_probe_metadata_and_framecrc_parsers() -> None:
    text = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mov':
  Metadata:
    major_brand     : qt
    faceswap        : synthetic
  Duration: 00:01:02.50, start: 0.100000, bitrate: 1000 kb/s
  Stream #0:0[0x1](und): Audio: pcm_s16le (sowt / 0x74776F73), 44100 Hz, stereo, s16, \
1411 kb/s (default)
  Stream #0:1[0x2](eng): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, \
progressive), 1920x1080 [SAR 1:1 DAR 16:9], 8000 kb/s, 29.97 fps, 29.97 tbr, 30k tbn (default)
    Side data:
      displaymatrix: rotation of -90.00 degrees
"""
    parsed = parse_probe_output(text)
    hdr = text.replace("yuv420p(tv, bt709,", "yuv420p10le(tv, bt2020nc/bt2020/smpte2084,")
    assert parse_probe_output(hdr).video[0]["hdr"] and not parsed.video[0]["hdr"]
    assert parse_probe_output(hdr).video[0]["tags"] == ("bt2020nc", "bt2020", "smpte2084")
    assert parsed.video[0]["tags"] == ("bt709", "", "")
    assert parsed.demuxer == "mov"
    assert parsed.duration == pytest.approx(62.5) and parsed.container_start == 0.1
    assert parsed.metadata["faceswap"] == "synthetic"
    video = parsed.video[0]
    assert (video["width"], video["height"]) == (1920, 1080)
    assert video["pix_fmt"] == "yuv420p" and video["rotation"] == -90.0
    assert parsed.audio[0]["channels"] == 2 and parsed.audio[0]["sample_rate"] == 44100
    crc = "#tb 0: 1/30000\n#media_type 0: video\n0, -2002, 0, 1001, 10, 0x1\n"
    crc += "0, -1001, 2002, 1001, 9, 0x2, F=0x0\n"
    crc += "0, -3003, -1001, 1001, 40, 0x3, F=0x5\n"  # key + discard: outside the edit list
    assert parse_framecrc(crc) == (Fraction(1, 30000), [0, 2002], [1001, 1001])
    nopts = -(2**63)
    avi = f"#tb 0: 1/25\n0, 0, {nopts}, 1, 9, 0x1\n0, 1, {nopts}, 1, 9, 0x2\n"
    assert parse_framecrc(avi) == (Fraction(1, 25), [0, 1], [1, 1])  # no pts: the dts


@pytest.mark.parametrize("content", [b"", b"this is a text file, not a video\n" * 20])
def test_probe_rejects_non_videos(tmp_path: Path, content: bytes) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(content)
    with pytest.raises(FaceswapError, match=r"fake\.mp4: not a readable video.*re-encode"):
        probe(fake)


def test_probe_rejects_truncated_and_missing(tmp_path: Path, clip_one_face: ClipInfo) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip_one_face.path.read_bytes()[:4000])
    with pytest.raises(FaceswapError, match=r"cut\.mp4"):
        probe(cut)
    with pytest.raises(FaceswapError, match="no such file"):
        probe(tmp_path / "missing.mp4")


# ------------------------------------------------------------------------------ reading


def test_reads_every_frame_in_order(clip_one_face: ClipInfo) -> None:
    source = open_source(clip_one_face.path)
    assert source.is_video and source.fps == Fraction(25) and len(source) == 48
    frames = list(source.iter_frames())
    assert [f.index for f in frames] == list(range(48))
    assert frames[0].name == "frame_000000" and frames[47].name == "frame_000047"
    assert [f.timestamp for f in frames] == pytest.approx([i / 25 for i in range(48)])
    scene = clip_one_face.scene
    for i in (0, 11, 30, 47):
        image = frames[i].image
        assert image.shape == (360, 640, 3) and image.dtype == np.uint8
        assert _psnr(image, scene.frame(i)) > 30
        # The right frame, not a neighbour: frames differ (the face moves).
        assert (
            _psnr(image, scene.frame(i))
            > _psnr(image, scene.frame(i + 3 if i + 3 < 48 else i - 3)) + 3
        )
    frames[0].image[0, 0] = 0  # frames are writable


def test_every_nth_and_start(clip_with_blank_frames: ClipInfo) -> None:
    source = open_source(clip_with_blank_frames.path)
    frames = list(source.iter_frames(every_nth=4, start=3))
    assert [f.index for f in frames] == [3, 7, 11, 15, 19, 23, 27]
    assert source.selected_count(4, 3) == 7
    fps = Fraction(30000, 1001)
    assert frames[1].timestamp == pytest.approx(float(7 / fps))
    scene = clip_with_blank_frames.scene
    for f in frames:
        assert _psnr(f.image, scene.frame(f.index)) > 30
    assert list(source.iter_frames(start=30)) == []
    with pytest.raises(FaceswapError, match="every_nth"):
        next(source.iter_frames(every_nth=0))


def _child_pids() -> set[int]:
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            text = (task / "children").read_text().split()
        except FileNotFoundError:  # the thread ended after the listing
            continue
        pids.update(int(p) for p in text)
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_stopping_early_ends_ffmpeg(clip_one_face: ClipInfo) -> None:
    before = _child_pids()
    frames = open_source(clip_one_face.path).iter_frames()
    next(frames)
    assert _child_pids() - before  # the decoder is running
    frames.close()
    assert not (_child_pids() - before)


def test_rotation_is_applied(clip_rotated: ClipInfo) -> None:
    frames = list(open_source(clip_rotated.path).iter_frames())
    assert len(frames) == 6 and frames[0].image.shape == (320, 192, 3)
    raw = clip_rotated.scene.frame(2)
    # 90 degrees counter-clockwise is np.rot90's direction.
    assert _psnr(frames[2].image, np.rot90(raw, 1)) > 28
    assert _psnr(frames[2].image, np.rot90(raw, 1)) > _psnr(frames[2].image, np.rot90(raw, 3)) + 5


def test_image_folder_natural_order(tmp_path: Path) -> None:
    from tests.media import make_image_folder

    folder = make_image_folder(tmp_path / "imgs", 11, ext="jpg", name_format="img{index}")
    source = open_source(folder.path)
    assert not source.is_video and source.fps is None and source.info is None
    assert (source.width, source.height, source.frame_count) == (640, 360, 11)
    frames = list(source.iter_frames(every_nth=5))
    assert [f.name for f in frames] == ["img0", "img5", "img10"]
    assert [f.index for f in frames] == [0, 5, 10]
    assert _psnr(frames[2].image, folder.scene.frame(10)) > 30


def test_list_inputs(tmp_path: Path, clip_one_face: ClipInfo, image_folder_faces) -> None:
    assert list_inputs(clip_one_face.path) == [clip_one_face.path]
    assert list_inputs(image_folder_faces.path) == [image_folder_faces.path]
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("b10.mp4", "b2.mov", "notes.txt"):
        shutil.copy(clip_one_face.path, videos / name)
    assert [p.name for p in list_inputs(videos)] == ["b2.mov", "b10.mp4"]
    with pytest.raises(FaceswapError, match="holds videos"):
        open_source(videos)
    shutil.copy(image_folder_faces.files[0], videos / "x.png")
    with pytest.raises(FaceswapError, match="both images"):
        list_inputs(videos)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FaceswapError, match="no images or videos"):
        list_inputs(empty)
    with pytest.raises(FaceswapError, match="no images found"):
        open_source(empty)
    with pytest.raises(FaceswapError, match="no such"):
        list_inputs(tmp_path / "nope")


# ------------------------------------------------------------------------------ writing


def _copy_through(source: FrameSource, out: Path, **kwargs) -> Path:
    with VideoWriter(out, source.width, source.height, source.fps, **kwargs) as writer:
        for frame in source.iter_frames():
            writer.write(frame.image)
    return out


def test_round_trip_with_audio_and_metadata(tmp_path: Path, clip_one_face: ClipInfo) -> None:
    source = open_source(clip_one_face.path)
    out = _copy_through(
        source,
        tmp_path / "out.mp4",
        crf=20,
        preset="ultrafast",
        audio_from=clip_one_face.path,
        metadata={"faceswap_synthetic": "true", "comment": "made by tests"},
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    src, dst = probe(clip_one_face.path), probe(out)
    assert dst.frame_count == src.frame_count == 48
    assert dst.fps == src.fps and dst.duration == pytest.approx(src.duration)
    assert (dst.width, dst.height) == (src.width, src.height)
    assert dst.has_audio and dst.audio[0].codec == "aac"
    assert dst.audio_offset == pytest.approx(src.audio_offset, abs=0.002)
    assert _audio_samples(out) == pytest.approx(_audio_samples(clip_one_face.path), abs=1024)
    assert dst.metadata["faceswap_synthetic"] == "true"
    assert dst.metadata["comment"] == "made by tests"
    decoded = next(open_source(out).iter_frames(start=20)).image
    assert _psnr(decoded, clip_one_face.scene.frame(20)) > 30


def test_audio_that_starts_late_stays_in_sync(tmp_path: Path, clip_audio_late: ClipInfo) -> None:
    out = _copy_through(
        open_source(clip_audio_late.path),
        tmp_path / "late_out.mp4",
        preset="ultrafast",
        audio_from=clip_audio_late.path,
    )
    src, dst = probe(clip_audio_late.path), probe(out)
    assert dst.audio_offset == pytest.approx(src.audio_offset, abs=0.002)
    np.testing.assert_allclose(
        beep_onsets(out) + dst.audio_offset,
        beep_onsets(clip_audio_late.path) + src.audio_offset,
        atol=0.003,
    )


def _subtitle_cues(path: Path) -> str:
    done = subprocess.run(
        [find_ffmpeg(), "-v", "error", "-i", str(path), "-map", "0:s:0", "-f", "srt", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_subtitles_and_stream_languages_are_kept(
    tmp_path: Path, clip_audio_late: ClipInfo, suffix: str
) -> None:
    srt = tmp_path / "cues.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:01,250\nhello\n")
    source = tmp_path / "subtitled.mkv"
    mux = ["-map", "0", "-map", "1", "-c", "copy", "-c:s", "srt"]
    tags = ["-metadata:s:a:0", "language=fra", "-metadata:s:s:0", "language=deu"]
    inputs = ["-i", str(clip_audio_late.path), "-i", str(srt)]
    subprocess.run([find_ffmpeg(), "-v", "error", *inputs, *mux, *tags, str(source)], check=True)
    assert probe(source).subtitles == ("subrip",)
    out = _copy_through(
        open_source(source), tmp_path / f"out{suffix}", preset="ultrafast", audio_from=source
    )
    dst = probe(out)
    assert dst.subtitles == (("subrip",) if suffix == ".mkv" else ("mov_text",))
    assert "00:00:00,500 --> 00:00:01,250" in _subtitle_cues(out)
    assert dst.audio_offset == pytest.approx(probe(source).audio_offset, abs=0.002)
    streams = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-i", str(out)], capture_output=True, text=True
    ).stderr
    assert "(fra): Audio" in streams and "(deu): Subtitle" in streams


def test_mpeg_ts_source_keeps_sync(tmp_path: Path) -> None:
    # MPEG-TS starts its clock at 1.4 s and the audio later still.
    clip = make_clip(tmp_path / "cam.ts", frames=40, audio_offset=0.2, width=320, height=192)
    src = probe(clip.path)
    assert src.start_time > 1.0 and src.audio_offset == pytest.approx(0.2, abs=0.025)
    out = _copy_through(
        open_source(clip.path), tmp_path / "o.mp4", preset="ultrafast", audio_from=clip.path
    )
    dst = probe(out)
    assert dst.frame_count == 40 and dst.audio_offset == pytest.approx(src.audio_offset, abs=0.002)
    np.testing.assert_allclose(
        beep_onsets(out) + dst.audio_offset, beep_onsets(clip.path) + src.audio_offset, atol=0.003
    )


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_audio_that_starts_early_stays_in_sync(
    tmp_path: Path, clip_audio_early: ClipInfo, suffix: str
) -> None:
    # mkv keeps the audio before the first frame; mp4 trims it with an edit list. Either way
    # every beep after the first frame plays at the same video time as in the source.
    out = _copy_through(
        open_source(clip_audio_early.path),
        tmp_path / f"early_out{suffix}",
        preset="ultrafast",
        audio_from=clip_audio_early.path,
    )
    src, dst = probe(clip_audio_early.path), probe(out)
    assert dst.frame_count == 48
    src_on = beep_onsets(clip_audio_early.path) + src.audio_offset
    dst_on = beep_onsets(out) + dst.audio_offset
    src_on, dst_on = src_on[src_on > 0.05], dst_on[dst_on > 0.05]
    assert len(src_on) >= 2
    np.testing.assert_allclose(dst_on, src_on, atol=0.003)


def test_ntsc_rate_written_exactly(tmp_path: Path, clip_with_blank_frames: ClipInfo) -> None:
    out = _copy_through(
        open_source(clip_with_blank_frames.path), tmp_path / "ntsc.mkv", preset="ultrafast"
    )
    info = probe(out)
    assert info.fps == Fraction(30000, 1001) and info.frame_count == 30
    assert not info.has_audio


def test_error_inside_with_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous result")
    with (
        pytest.raises(RuntimeError, match="boom"),
        VideoWriter(out, 64, 48, 25, preset="ultrafast") as writer,
    ):
        writer.write(np.zeros((48, 64, 3), np.uint8))
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    assert out.read_bytes() == b"previous result"


def test_wrong_frame_shape_aborts(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="shape"),
        VideoWriter(tmp_path / "o.mp4", 64, 48, 25) as writer,
    ):
        writer.write(np.zeros((48, 63, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_no_frames_is_an_error(tmp_path: Path) -> None:
    with (
        pytest.raises(FaceswapError, match="no frames"),
        VideoWriter(tmp_path / "o.mp4", 64, 48, 25),
    ):
        pass
    assert list(tmp_path.iterdir()) == []


def test_output_under_a_file_is_refused(tmp_path: Path) -> None:
    # Unwritable for every user, root included (CI runs as root).
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    for target in (blocker / "o.mp4", blocker / "sub" / "o.mp4"):
        with pytest.raises(FaceswapError, match=r"not a folder|cannot create output folder"):
            VideoWriter(target, 64, 48, 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_folder_that_refuses_new_files_is_one_line(tmp_path: Path) -> None:
    # /proc passes root's access check but holds no new files; for other users the check
    # itself refuses it. Either way one FaceswapError, no OSError.
    with pytest.raises(FaceswapError, match=r"^/proc: (cannot create|output folder)"):
        VideoWriter(Path("/proc/o.mp4"), 64, 48, 25)


def test_unwritable_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # root ignores the mode bits: make the check see them
        real_access = os.access
        monkeypatch.setattr(
            os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
        )
    try:
        with pytest.raises(FaceswapError, match="not writable"):
            VideoWriter(locked / "o.mp4", 64, 48, 25)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_unknown_encoder_and_odd_size(tmp_path: Path) -> None:
    assert "libx264" in available_encoders()
    with pytest.raises(FaceswapError, match=r"'h264_warp'.*libx264"):
        VideoWriter(tmp_path / "o.mp4", 64, 48, 25, codec="h264_warp")
    with pytest.raises(FaceswapError, match=r"even frame size.*--pix-fmt"):
        VideoWriter(tmp_path / "o.mp4", 63, 48, 25, pix_fmt="yuv420p")
    assert list(tmp_path.iterdir()) == []


def test_odd_frame_size_is_written_as_yuv444p_by_default(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (47, 63, 3), dtype=np.uint8) for _ in range(3)]
    with VideoWriter(out, 63, 47, 25, preset="ultrafast") as writer:
        assert writer.pix_fmt == "yuv444p"
        for frame in frames:
            writer.write(frame)
    info = probe(out)
    assert (info.width, info.height, info.frame_count) == (63, 47, 3)
    assert info.pix_fmt == "yuv444p"
    decoded = [f.image for f in open_source(out).iter_frames()]
    assert len(decoded) == 3
    assert np.abs(decoded[0].astype(int) - frames[0].astype(int)).mean() < 12


def test_output_under_a_file_is_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "report.txt"
    blocker.write_text("not a folder")
    with pytest.raises(FaceswapError, match="not a folder"):
        VideoWriter(blocker / "o.mp4", 64, 48, 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.txt"]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_start_seeks_to_the_exact_frame(media_dir: Path, suffix: str) -> None:
    # Keyframes every 8 frames: the seek lands mid-GOP and must still start on frame `start`.
    clip = make_clip(
        media_dir / f"gop8{suffix}", frames=72, fps=Fraction(30000, 1001), gop=8, audio=False
    )
    source = open_source(clip.path)
    assert isinstance(source, VideoSource) and source.seek_for(45)[0] is not None
    frames = list(source.iter_frames(every_nth=5, start=45))
    assert [f.index for f in frames] == [45, 50, 55, 60, 65, 70]
    for f in frames:
        assert f.timestamp == pytest.approx(f.index * 1001 / 30000, abs=0.001)
        scores = {
            j: _psnr(f.image, clip.scene.frame(j))
            for j in (f.index - 1, f.index, f.index + 1)
            if j < 72
        }
        assert max(scores, key=scores.get) == f.index and scores[f.index] > 30


def test_stream_copy_trim_counts_only_shown_frames(tmp_path: Path) -> None:
    # `ffmpeg -ss X -c copy` keeps the GOP's leading frames behind an edit list: they are
    # demuxed but never decoded into output, so they must not be counted.
    clip = make_clip(tmp_path / "g.mp4", frames=40, gop=12, audio=False, width=320, height=192)
    trimmed = tmp_path / "trim.mp4"
    cmd = [find_ffmpeg(), "-v", "error", "-ss", "0.5", "-i", str(clip.path), "-c", "copy"]
    subprocess.run([*cmd, str(trimmed)], check=True)
    info = probe(trimmed)
    frames = list(open_source(trimmed).iter_frames())
    assert info.frame_count == len(frames) and 25 < len(frames) < 40
    assert info.frame_times[0] == 0.0 and frames[0].timestamp == 0.0


def test_variable_frame_rate(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=40, audio=False, width=320, height=192)
    vfr = tmp_path / "vfr.mp4"
    # Frames 0-19 at 25 fps, then 12.5 fps: timestamps no single rate explains.
    setpts = "setpts='(N/25+if(gte(N,20),(N-20)/25,0))/TB'"
    cmd = [find_ffmpeg(), "-v", "error", "-i", str(clip.path), "-vf", setpts, "-fps_mode", "vfr"]
    subprocess.run([*cmd, str(vfr)], check=True)
    info = probe(vfr)
    assert info.variable_rate and info.frame_count == 40
    assert info.frame_times[19] == pytest.approx(0.76)
    assert info.frame_times[21] == pytest.approx(0.88)
    frames = list(open_source(vfr).iter_frames())
    assert len(frames) == 40 and frames[30].timestamp == pytest.approx(info.frame_times[30])
    assert not probe(clip.path).variable_rate


@pytest.mark.parametrize(
    ("suffix", "codec", "audio"), [(".avi", "libx264", "mp3"), (".webm", "libvpx-vp9", "opus")]
)
def test_reencoded_audio_stays_in_sync(tmp_path: Path, suffix: str, codec: str, audio: str) -> None:
    # AAC does not go in AVI or WebM: the audio is re-encoded, lead-in padded with silence.
    clip = make_clip(tmp_path / "src.mkv", frames=36, audio_offset=0.2, width=320, height=192)
    out = _copy_through(
        open_source(clip.path), tmp_path / f"out{suffix}", codec=codec, audio_from=clip.path
    )
    src, dst = probe(clip.path), probe(out)
    assert dst.frame_count == 36 and dst.fps == 25 and dst.audio[0].codec == audio
    np.testing.assert_allclose(
        beep_onsets(out) + dst.audio_offset, beep_onsets(clip.path) + src.audio_offset, atol=0.003
    )


def test_webm_needs_a_webm_codec(tmp_path: Path) -> None:
    with pytest.raises(FaceswapError, match="libvpx-vp9"):
        VideoWriter(tmp_path / "o.webm", 64, 48, 25)
    assert list(tmp_path.iterdir()) == []


def test_colour_round_trip_has_no_bias(tmp_path: Path) -> None:
    # RGB -> yuv420p -> RGB loses chroma detail but must not shift levels (swscale's fast
    # default darkens by ~1.2 levels per trip, which compounds over convert passes).
    from tests.media import Scene

    scene = Scene(320, 192, 3, seed=7)
    out = tmp_path / "lossless.mkv"
    with VideoWriter(out, 320, 192, 25, crf=0, preset="ultrafast") as writer:
        for i in range(3):
            writer.write(scene.frame(i))
    for frame in open_source(out).iter_frames():
        error = frame.image.astype(np.float64) - scene.frame(frame.index).astype(np.float64)
        assert np.abs(error.mean(axis=(0, 1))).max() < 0.3
        assert np.abs(error).mean() < 1.0


@pytest.mark.parametrize(("width", "height", "matrix"), [(1280, 720, "bt709"), (640, 360, "bt601")])
def test_untagged_sources_decode_with_the_players_matrix(
    tmp_path: Path, width: int, height: int, matrix: str
) -> None:
    # No colour tags: players read HD as BT.709 and SD as BT.601; frames must match that.
    from tests.media import Scene

    scene = Scene(width, height, 2, seed=8)
    path = tmp_path / "untagged.mkv"
    raw = b"".join(scene.frame(i).tobytes() for i in range(2))
    cmd = [find_ffmpeg(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24"]
    cmd += ["-s", f"{width}x{height}", "-framerate", "25", "-i", "pipe:0"]
    cmd += ["-vf", f"scale=out_color_matrix={matrix}:flags=accurate_rnd+full_chroma_int,"]
    cmd[-1] += "format=yuv420p,setparams=colorspace=unknown"  # untag: convert, then forget
    cmd += ["-c:v", "libx264", "-crf", "0", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    subprocess.run([*cmd, str(path)], input=raw, check=True)
    info = probe(path)
    assert info.color_matrix == ""
    frame = next(open_source(path).iter_frames()).image.astype(np.float64)
    error = frame - scene.frame(0).astype(np.float64)
    assert np.abs(error.mean(axis=(0, 1))).max() < 0.5
    assert np.abs(error).mean() < 1.2


def test_writer_tags_bt709(tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    with VideoWriter(out, 64, 48, 25, preset="ultrafast") as writer:
        writer.write(np.full((48, 64, 3), 128, np.uint8))
    assert probe(out).color_matrix == "bt709"


def test_encoder_checks() -> None:
    from faceswap.io.video import encoder_works, pick_encoder

    assert encoder_works("libx264")
    assert not encoder_works("no_such_encoder")
    assert pick_encoder(("no_such_encoder", "libx264"), fallback="mpeg4") == "libx264"
    assert pick_encoder(("no_such_encoder",)) == "libx264"
    from faceswap.io.video import AUTO_H264, AUTO_HEVC, auto_encoder

    assert auto_encoder() in (*AUTO_H264, "libx264")
    assert auto_encoder(hdr=True) in (*AUTO_HEVC, "libx265")  # 10-bit HDR: HEVC


@pytest.mark.parametrize("suffix", [".mov", ".mkv"])
def test_timecode_is_carried_over(tmp_path: Path, suffix: str) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=5, audio=True, width=320, height=192)
    source = tmp_path / "tc.mov"
    cmd = [find_ffmpeg(), "-v", "error", "-i", str(clip.path), "-c", "copy"]
    subprocess.run([*cmd, "-timecode", "01:02:03:04", str(source)], check=True)
    assert probe(source).timecode == "01:02:03:04"
    out = _copy_through(open_source(source), tmp_path / f"o{suffix}", audio_from=source)
    assert probe(out).timecode == "01:02:03:04"
    assert probe(clip.path).timecode == ""


def test_anamorphic_pixel_aspect_is_kept(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.mp4", frames=4, audio=True, width=320, height=192)
    hdv = tmp_path / "hdv.mkv"
    cmd = [find_ffmpeg(), "-v", "error", "-i", str(clip.path), "-vf", "setsar=4/3"]
    subprocess.run([*cmd, "-c:v", "libx264", "-preset", "ultrafast", str(hdv)], check=True)
    assert probe(hdv).sar == Fraction(4, 3)
    assert probe(clip.path).sar == 1
    out = _copy_through(open_source(hdv), tmp_path / "o.mp4", audio_from=hdv, preset="ultrafast")
    assert probe(out).sar == Fraction(4, 3)


def test_encoder_failure_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    # ffmpeg refuses the pixel format and exits: the next write or the close must say so.
    frame = np.zeros((48, 64, 3), np.uint8)
    with (
        pytest.raises(FaceswapError, match=r"o\.mp4: encoding failed") as info,
        VideoWriter(tmp_path / "o.mp4", 64, 48, 25, pix_fmt="no_such_format") as writer,
    ):
        for _ in range(200):
            writer.write(frame)
    assert list(tmp_path.iterdir()) == []
    message = str(info.value)
    assert "no_such_format" in message and "@ 0x" not in message and "/." not in message
