"""End-to-end convert runs on generated clips: timing, audio, passthrough, provenance, errors."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.convert import COLOUR_MODES, MASK_MODES, ConvertConfig, run_convert
from faceswap.convert import pipeline as pipeline_module
from faceswap.errors import FaceswapError
from faceswap.io.ffmpeg_bin import find_ffmpeg
from faceswap.io.video import open_source, probe
from faceswap.provenance import read_manifest, read_provenance
from tests.convert.conftest import truth_alignments
from tests.media import ClipInfo, beep_onsets, make_image_folder


def _cfg(clip: Path, model: Path, out: Path, **kw: object) -> ConvertConfig:
    kw.setdefault("progress", False)
    kw.setdefault("device", "cpu")
    kw.setdefault("preset", "ultrafast")
    kw.setdefault("batch_size", 4)
    return ConvertConfig(input=clip, model_dir=model, output=out, **kw)  # type: ignore[arg-type]


def _frames(path: Path) -> list[np.ndarray]:
    return [np.array(f.image) for f in open_source(path).iter_frames()]


def _audio_seconds(path: Path) -> float:
    args = [find_ffmpeg(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0"]
    args += ["-ac", "1", "-ar", "48000", "-f", "s16le", "-"]
    pcm = subprocess.run(args, capture_output=True, check=True).stdout
    return len(pcm) / 2 / 48000.0


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


@pytest.mark.slow
def test_round_trip_keeps_timing_audio_and_marks_provenance(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.mp4"
    result = run_convert(_cfg(short_clip.path, model_dir, out, alignments=short_alignments))
    src, dst = probe(short_clip.path), probe(out)
    assert result.frames == dst.frame_count == src.frame_count == 16
    assert dst.fps == src.fps  # exact Fraction, 30000/1001
    assert dst.duration == pytest.approx(src.duration, abs=1e-3)
    assert result.frames_swapped == 16 - len(short_clip.blank_frames)
    # Audio: present, as long as the input's, still starting 0.2 s after the video.
    assert dst.has_audio
    assert _audio_seconds(out) == pytest.approx(_audio_seconds(short_clip.path), abs=0.03)
    assert dst.audio_offset == pytest.approx(src.audio_offset, abs=0.01)
    on_src = beep_onsets(short_clip.path) + src.audio_offset
    on_dst = beep_onsets(out) + dst.audio_offset
    np.testing.assert_allclose(on_dst, on_src, atol=0.005)
    # Faceless frames come through within codec error; swapped frames changed.
    before, after = _frames(short_clip.path), _frames(out)
    for i in range(16):
        mse = ((after[i].astype(float) - before[i].astype(float)) ** 2).mean()
        psnr = 10 * np.log10(255.0**2 / max(mse, 1e-9))
        if i in short_clip.blank_frames:
            assert psnr > 38, (i, psnr)  # a crf 18 re-encode: codec error only
        else:
            assert psnr < 36, (i, psnr)  # an untrained model's face is a blur
    # Provenance: container tags and manifest.
    tags = read_provenance(out)
    assert tags["synthetic"] == "1" and tags["model_sha256"] == result.model_sha256
    manifest = read_manifest(out)
    assert manifest is not None and result.manifest == tmp_path / "out.mp4.json"
    assert manifest["frames"] == {"total": 16, "swapped": result.frames_swapped}
    assert manifest["input"]["name"] == "short.mp4" and len(manifest["input"]["sha256"]) == 64
    assert manifest["settings"]["colour"] == "rct"
    assert str(tmp_path) not in json.dumps(manifest)  # names only, no local paths
    assert _leftovers(tmp_path, set()) == ["out.mp4", "out.mp4.json"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt", "crf"),
    [("out.mkv", "ffv1", "bgr0", 18), ("out.mp4", "libx264rgb", "rgb24", 0)],
)
def test_lossless_output_is_exact_outside_faces(
    name: str,
    codec: str,
    pix_fmt: str,
    crf: int,
    short_clip: ClipInfo,
    short_alignments: Path,
    model_dir: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / name
    run_convert(
        _cfg(
            short_clip.path, model_dir, out, alignments=short_alignments, codec=codec,
            pix_fmt=pix_fmt, crf=crf, colour="avg", batch_size=3,
        )
    )  # fmt: skip
    before, after = _frames(short_clip.path), _frames(out)
    assert len(after) == len(before)
    for i, (a, b) in enumerate(zip(after, before, strict=True)):
        if i in short_clip.blank_frames:
            np.testing.assert_array_equal(a, b)
            continue
        # Far from every face the frame is byte-identical; on the face it changed.
        keep = np.ones(a.shape[:2], bool)
        for face in short_clip.faces[i]:
            x0, y0, x1, y1 = face.box
            pad = 0.9 * (y1 - y0)
            keep[max(int(y0 - pad), 0) : int(y1 + pad), max(int(x0 - pad), 0) : int(x1 + pad)] = (
                False
            )
        np.testing.assert_array_equal(a[keep], b[keep])
        assert not np.array_equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("colour", ["avg", "seamless"])
def test_matte_marks_exactly_the_changed_pixels(
    colour: str, short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    out, matte = tmp_path / "out.mkv", tmp_path / "matte.mkv"
    result = run_convert(
        _cfg(short_clip.path, model_dir, out, alignments=short_alignments, codec="ffv1",
             colour=colour, matte=matte)
    )  # fmt: skip
    assert result.matte == matte and probe(matte).frame_count == 16
    assert not probe(matte).has_audio
    before, after, mattes = _frames(short_clip.path), _frames(out), _frames(matte)
    for i, (a, b, m) in enumerate(zip(after, before, mattes, strict=True)):
        assert np.array_equal(m[..., 0], m[..., 1])  # grey
        alpha = m[..., 0]
        if i in short_clip.blank_frames:
            assert alpha.max() == 0
            continue
        # Lossless output: untouched wherever the matte is 0, swapped where it is white.
        np.testing.assert_array_equal(a[alpha == 0], b[alpha == 0])
        solid = alpha >= 250
        assert solid.sum() > 500
        assert np.abs(a[solid].astype(int) - b[solid].astype(int)).mean() > 5
    assert read_manifest(out)["settings"]["matte"] == "matte.mkv"  # type: ignore[index]
    assert _leftovers(tmp_path, set()) == ["matte.mkv", "out.mkv", "out.mkv.json"]


@pytest.mark.slow
@pytest.mark.parametrize("frame_format", ["png", "tif"])
def test_video_to_an_image_sequence_and_back(
    frame_format: str,
    short_clip: ClipInfo,
    short_alignments: Path,
    model_dir: Path,
    tmp_path: Path,
) -> None:
    from faceswap.io.encode import EncodeFramesConfig, run_encode_frames

    out, matte = tmp_path / "shot_frames", tmp_path / "shot_matte"
    result = run_convert(
        _cfg(short_clip.path, model_dir, out, alignments=short_alignments, matte=matte,
             frame_format=frame_format)
    )  # fmt: skip
    names = [f"frame_{i:06d}.{frame_format}" for i in range(16)]
    assert sorted(p.name for p in out.iterdir()) == names
    assert sorted(p.name for p in matte.iterdir()) == [f"frame_{i:06d}.png" for i in range(16)]
    assert result.manifest == tmp_path / "shot_frames.json"
    # Every frame carries the provenance tags itself (PNG text chunks, TIFF description).
    for name in names[:3]:
        tags = read_provenance(out / name)
        assert tags["synthetic"] == "1" and tags["model_sha256"] == result.model_sha256
    swapped = 16 - len(short_clip.blank_frames)
    assert read_manifest(out)["frames"] == {"total": 16, "swapped": swapped}  # type: ignore[index]
    before = _frames(short_clip.path)
    after = [cv2.cvtColor(cv2.imread(str(out / n)), cv2.COLOR_BGR2RGB) for n in names]
    for i, (a, b) in enumerate(zip(after, before, strict=True)):
        if i in short_clip.blank_frames:
            np.testing.assert_array_equal(a, b)  # lossless: the decoded frame, exactly
        else:
            alpha = cv2.imread(str(matte / f"frame_{i:06d}.png"), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(a[alpha == 0], b[alpha == 0])
            assert not np.array_equal(a, b)
    # Back to a video with the original's audio; still marked synthetic.
    video = tmp_path / "shot.mp4"
    back = run_encode_frames(
        EncodeFramesConfig(input=out, output=video, like=short_clip.path, preset="ultrafast",
                           progress=False)
    )  # fmt: skip
    src, dst = probe(short_clip.path), probe(video)
    assert back.frames == dst.frame_count == 16 and dst.fps == src.fps
    assert _audio_seconds(video) == pytest.approx(_audio_seconds(short_clip.path), abs=0.03)
    assert read_provenance(video)["synthetic"] == "1"
    assert _leftovers(tmp_path, set()) == sorted(
        ["shot.mp4", "shot.mp4.json", "shot_frames", "shot_frames.json", "shot_matte"]
    )


@pytest.mark.slow
@pytest.mark.parametrize(("codec", "pix_fmt"), [("prores_ks", "yuv422p10le"), ("dnxhd", "yuv422p")])
def test_editing_codecs_write_a_mov_for_the_edit(
    codec: str,
    pix_fmt: str,
    short_clip: ClipInfo,
    short_alignments: Path,
    model_dir: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "edit.mov"
    run_convert(_cfg(short_clip.path, model_dir, out, alignments=short_alignments, codec=codec))
    written, src = probe(out), probe(short_clip.path)
    assert written.codec == codec.split("_")[0] and written.pix_fmt == pix_fmt
    assert written.frame_count == 16 and written.fps == src.fps and written.has_audio
    before, after = _frames(short_clip.path), _frames(out)
    for i in short_clip.blank_frames:
        mse = ((after[i].astype(float) - before[i].astype(float)) ** 2).mean()
        assert 10 * np.log10(255.0**2 / max(mse, 1e-9)) > 40, i
    with pytest.raises(FaceswapError, match=r"MP4 cannot hold .*\.mov"):
        run_convert(_cfg(short_clip.path, model_dir, tmp_path / "edit.mp4", codec=codec))
    assert _leftovers(tmp_path, set()) == ["edit.mov", "edit.mov.json"]


@pytest.mark.slow
def test_hdr_stays_hdr_with_its_tags_in_ten_bits(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    from faceswap.io.encode import EncodeFramesConfig, run_encode_frames

    hlg = tmp_path / "hlg.mp4"  # the clip retagged as 10-bit HLG (a phone's HDR video)
    tags = "colorspace=bt2020nc:color_primaries=bt2020:color_trc=arib-std-b67:range=tv"
    args = [find_ffmpeg(), "-v", "error", "-i", str(short_clip.path), "-map", "0", "-c:a"]
    args += ["copy", "-vf", f"format=yuv420p10le,setparams={tags}", "-c:v", "libx264"]
    subprocess.run([*args, "-crf", "10", "-preset", "ultrafast", str(hlg)], check=True)
    source = probe(hlg)
    assert source.hdr and source.output_colour is not None
    out = tmp_path / "out.mp4"
    run_convert(_cfg(hlg, model_dir, out, alignments=short_alignments))
    written = probe(out)
    assert written.pix_fmt == "yuv420p10le" and written.hdr
    colour = (written.color_matrix, written.color_primaries, written.color_transfer)
    assert colour == ("bt2020nc", "bt2020", "arib-std-b67")
    assert written.frame_count == 16 and written.has_audio
    before, after = _frames(hlg), _frames(out)
    for i in short_clip.blank_frames:  # passed through: the same code values, codec error
        mse = ((after[i].astype(float) - before[i].astype(float)) ** 2).mean()
        assert 10 * np.log10(255.0**2 / max(mse, 1e-9)) > 40, i
    # --codec auto picks HEVC for HDR (a hardware encoder where one works, else x265).
    auto = tmp_path / "auto.mkv"
    run_convert(_cfg(hlg, model_dir, auto, alignments=short_alignments, codec="auto"))
    assert probe(auto).codec == "hevc" and probe(auto).color_transfer == "arib-std-b67"
    # Frames of it, encoded back like the source, are HDR again too.
    frames = tmp_path / "frames"
    run_convert(_cfg(hlg, model_dir, frames, alignments=short_alignments))
    frame = cv2.imread(str(frames / "frame_000000.png"), cv2.IMREAD_UNCHANGED)
    assert frame.dtype == np.uint16  # a 10-bit source gives 16-bit frames
    video = tmp_path / "back.mp4"
    run_encode_frames(
        EncodeFramesConfig(input=frames, output=video, like=hlg, preset="ultrafast",
                           progress=False)
    )  # fmt: skip
    back = probe(video)
    assert back.pix_fmt == "yuv420p10le" and back.color_transfer == "arib-std-b67"


def test_ranges_only_writes_just_those_frames(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    full, some = tmp_path / "full", tmp_path / "some"
    run_convert(_cfg(short_clip.path, model_dir, full, alignments=short_alignments))
    result = run_convert(
        _cfg(short_clip.path, model_dir, some, alignments=short_alignments,
             frame_ranges="3,10-11", ranges_only=True)
    )  # fmt: skip
    names = ["frame_000003.png", "frame_000010.png", "frame_000011.png"]
    assert sorted(p.name for p in some.iterdir()) == names and result.frames == 3
    for name in names:  # the same pixels as in the full run
        assert (some / name).read_bytes() == (full / name).read_bytes()
    assert read_manifest(some)["frames"]["total"] == 3  # type: ignore[index]
    with pytest.raises(FaceswapError, match="--ranges-only writes just some frames"):
        run_convert(_cfg(short_clip.path, model_dir, tmp_path / "o.mp4", frame_ranges="3",
                         ranges_only=True))  # fmt: skip
    with pytest.raises(FaceswapError, match="give those"):
        _cfg(short_clip.path, model_dir, tmp_path / "o", ranges_only=True)


@pytest.mark.slow
@pytest.mark.parametrize("found", ["on the fly", "alignments"])
def test_faces_are_not_tracked_or_smoothed_across_a_gap_in_the_ranges(
    found: str, short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    out, matte = tmp_path / "frames", tmp_path / "matte"
    how = (
        {"detector": "dlib-hog", "detect_every": 5}
        if found == "on the fly"
        else {"alignments": short_alignments, "smooth": "ema"}
    )
    run_convert(
        _cfg(short_clip.path, model_dir, out, matte=matte, frame_ranges="2-3,7-8",
             ranges_only=True, **how)
    )  # fmt: skip
    for i in (2, 3, 7, 8):  # the face moved ~200 px between frames 3 and 7
        alpha = cv2.imread(str(matte / f"frame_{i:06d}.png"), cv2.IMREAD_UNCHANGED) > 127
        ys, xs = np.nonzero(alpha)
        x0, y0, x1, y1 = short_clip.faces[i][0].box
        assert x0 <= xs.mean() <= x1 and y0 <= ys.mean() <= y1, i


def test_a_full_disk_is_one_clear_line_and_leaves_nothing(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    folder, al = _image_inputs(tmp_path, 2)
    out = tmp_path / "out"

    def full(self: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "write_bytes", full)
        with pytest.raises(FaceswapError) as err:
            run_convert(_cfg(folder, model_dir, out, alignments=al))
    assert str(err.value) == f"{out}: no space left on its disk; free some space or write elsewhere"
    assert _leftovers(tmp_path, {"frames", "alignments.json"}) == []


def test_image_sequence_output_paths(short_clip: ClipInfo, model_dir: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    (full / "old.png").parent.mkdir()
    (full / "old.png").write_bytes(b"x")
    with pytest.raises(FaceswapError, match="not an empty folder"):
        run_convert(_cfg(short_clip.path, model_dir, full))
    with pytest.raises(FaceswapError, match=r"unknown video container '\.v2'.*folder name"):
        run_convert(_cfg(short_clip.path, model_dir, tmp_path / "take.v2"))
    with pytest.raises(FaceswapError, match="--frame-format: choose from png, tif, jpg"):
        _cfg(short_clip.path, model_dir, tmp_path / "o", frame_format="gif")
    with pytest.raises(FaceswapError, match="so --matte is a folder of frames too"):
        run_convert(_cfg(short_clip.path, model_dir, tmp_path / "o", matte=tmp_path / "m.mp4"))
    with pytest.raises(FaceswapError, match="so --matte is a video too; give it a video suffix"):
        run_convert(_cfg(short_clip.path, model_dir, tmp_path / "o.mp4", matte=tmp_path / "m"))
    assert _leftovers(tmp_path, set()) == ["full"]


def test_matte_of_an_image_folder_and_bad_matte_paths(model_dir: Path, tmp_path: Path) -> None:
    folder, al = _image_inputs(tmp_path, 2)
    out, matte = tmp_path / "out", tmp_path / "matte"
    run_convert(_cfg(folder, model_dir, out, alignments=al, matte=matte))
    names = sorted(p.name for p in out.iterdir())
    assert sorted(p.name for p in matte.iterdir()) == names
    grey = cv2.imread(str(matte / names[0]), cv2.IMREAD_UNCHANGED)
    assert grey.ndim == 2 and grey.max() == 255 and grey.min() == 0
    same = tmp_path / "o3"
    with pytest.raises(FaceswapError, match="must differ"):
        run_convert(_cfg(folder, model_dir, same, alignments=al, matte=same))
    with pytest.raises(FaceswapError, match="folder"):  # image frames make a matte folder
        run_convert(
            _cfg(folder, model_dir, tmp_path / "o4", alignments=al, matte=tmp_path / "m.mp4")
        )
    assert not any((tmp_path / name).exists() for name in ("o3", "o4", "m.mp4"))


def test_face_scale_pastes_a_larger_or_smaller_face_about_its_centre(
    model_dir: Path, tmp_path: Path
) -> None:
    folder, al = _image_inputs(tmp_path, 1)

    def matte(scale: float) -> np.ndarray:
        out, m = tmp_path / f"o{scale}", tmp_path / f"m{scale}"
        run_convert(_cfg(folder, model_dir, out, alignments=al, matte=m, face_scale=scale))
        return cv2.imread(str(next(m.iterdir())), cv2.IMREAD_UNCHANGED) > 127

    def centre(mask: np.ndarray) -> np.ndarray:
        ys, xs = np.nonzero(mask)
        return np.array([xs.mean(), ys.mean()])

    plain, larger, smaller = matte(0.0), matte(20.0), matte(-20.0)
    assert larger.sum() / plain.sum() == pytest.approx(1.2**2, rel=0.05)
    assert smaller.sum() / plain.sum() == pytest.approx(0.8**2, rel=0.05)
    for scaled in (larger, smaller):
        np.testing.assert_allclose(centre(scaled), centre(plain), atol=1.5)
    with pytest.raises(FaceswapError, match="--face-scale"):
        _cfg(folder, model_dir, tmp_path / "x", face_scale=60)


@pytest.mark.slow
def test_motion_blur_smears_moving_faces_only(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    runs = {}
    for power in (0.0, 1.0):
        out = tmp_path / f"out{power}.mkv"
        run_convert(
            _cfg(short_clip.path, model_dir, out, alignments=short_alignments, codec="ffv1",
                 colour="none", motion_blur=power)
        )  # fmt: skip
        runs[power] = _frames(out)
    for i in range(16):
        still = i in short_clip.blank_frames or i - 1 in short_clip.blank_frames
        # A face with no face in the frame before has no motion: no blur.
        assert np.array_equal(runs[0.0][i], runs[1.0][i]) == still, i


def test_an_image_sequence_is_tracked_and_blurred_like_a_video(
    model_dir: Path, tmp_path: Path
) -> None:
    from faceswap.io.images import read_image

    frames = make_image_folder(tmp_path / "plates", 6)
    runs = {}
    for sequence in (False, True):
        for power in (0.0, 1.0):
            out = tmp_path / f"out_{sequence}_{power}"
            run_convert(_cfg(frames.path, model_dir, out, detector="dlib-hog", colour="none",
                             motion_blur=power, sequence=sequence))  # fmt: skip
            runs[sequence, power] = [read_image(p) for p in sorted(out.iterdir())]
    # Photos: each on its own, so no motion to blur; a shot: its moving face is smeared.
    assert all(
        np.array_equal(a, b) for a, b in zip(runs[False, 0.0], runs[False, 1.0], strict=True)
    )
    moved = [
        not np.array_equal(a, b) for a, b in zip(runs[True, 0.0], runs[True, 1.0], strict=True)
    ]
    assert not moved[0] and all(moved[1:])


def test_motion_tracker_measures_crop_pixels_between_consecutive_frames() -> None:
    from faceswap.convert.pipeline import _Face, _MotionTracker

    def face(x: float, scale: float = 0.25) -> _Face:
        # frame -> crop: scale about the origin, then shift; the crop is 32 px.
        matrix = np.array([[scale, 0.0, -x * scale], [0.0, scale, 0.0]])
        return _Face(matrix, np.zeros((68, 2)), np.zeros((32, 32, 3), np.uint8))

    tracker = _MotionTracker(32)
    first, second, third, jumped = face(100), face(108), face(108), face(400)
    tracker.update(0, [first])
    tracker.update(1, [second])
    tracker.update(3, [third])  # frame 2 is missing: no motion
    tracker.update(4, [jumped])  # further than half a face (64 px of a 128 px face): a cut
    assert first.motion == (0.0, 0.0) and third.motion == (0.0, 0.0)
    assert second.motion == pytest.approx((8 * 0.25, 0.0))
    assert jumped.motion == (0.0, 0.0)


def test_soften_and_grain_change_the_face_reproducibly(model_dir: Path, tmp_path: Path) -> None:
    folder, al = _image_inputs(tmp_path, 1)
    graded = {"sharpen": -1.0, "grain": 1.0}
    runs = {}
    for name, kw in (("plain", {}), ("graded", graded), ("again", graded)):
        out = tmp_path / name
        run_convert(_cfg(folder, model_dir, out, alignments=al, colour="none", **kw))
        runs[name] = next(out.iterdir()).read_bytes()
    assert runs["graded"] != runs["plain"] and runs["graded"] == runs["again"]
    with pytest.raises(FaceswapError, match="--sharpen must be >= -1"):
        _cfg(folder, model_dir, tmp_path / "x", sharpen=-2)
    with pytest.raises(FaceswapError, match="--grain"):
        _cfg(folder, model_dir, tmp_path / "x", grain=-0.1)


def test_a_grade_changes_only_the_swapped_face(model_dir: Path, tmp_path: Path) -> None:
    folder, al = _image_inputs(tmp_path, 1)
    runs = {}
    for name, kw in (("plain", {}), ("bright", {"brightness": 40.0, "temperature": 20.0})):
        out = tmp_path / name
        run_convert(_cfg(folder, model_dir, out, alignments=al, colour="none",
                         matte=tmp_path / f"{name}_matte", **kw))  # fmt: skip
        runs[name] = _frames(out)[0].astype(np.int32)
    changed = np.abs(runs["bright"] - runs["plain"]).max(axis=-1) > 0
    # only where the face was blended in (the matte)
    face = _frames(tmp_path / "plain_matte")[0].reshape(changed.shape[0], changed.shape[1], -1)
    assert changed.any() and not (changed & (face.max(axis=-1) == 0)).any()
    lighter = (runs["bright"] - runs["plain"]).sum(axis=-1)[changed]
    assert (lighter > 0).mean() > 0.9
    warmer = runs["bright"][changed][:, 2] - runs["plain"][changed][:, 2]
    assert warmer.mean() < (runs["bright"] - runs["plain"])[changed][:, 0].mean()  # less blue
    with pytest.raises(FaceswapError, match=r"--contrast must be in \[-100, 100\]"):
        _cfg(folder, model_dir, tmp_path / "x", contrast=-150)
    with pytest.raises(FaceswapError, match="frames 0-: --tint must be in"):
        _cfg(folder, model_dir, tmp_path / "x", blend_ranges=({"frames": "0-", "tint": 101},))


def test_frame_ranges_swap_only_there(model_dir: Path, tmp_path: Path) -> None:
    folder, al = _image_inputs(tmp_path, 3)
    out = tmp_path / "out"
    # As YAML gives it: a list of [first, last] pairs.
    result = run_convert(_cfg(folder, model_dir, out, alignments=al, frame_ranges=[[1, 1]]))
    assert result.faces_swapped == result.frames_swapped == 1
    before, after = _frames(folder), _frames(out)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[2], before[2])
    assert not np.array_equal(after[1], before[1])
    assert read_manifest(out)["settings"]["frame_ranges"] == "1-1"  # type: ignore[index]
    with pytest.raises(FaceswapError, match="selects none of its 3 frames"):
        run_convert(_cfg(folder, model_dir, tmp_path / "none", alignments=al, frame_ranges="3-"))
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(
    ("text", "ranges"),
    [
        ("", ()),
        ("7", ((7, 7),)),
        ("10-50, 90-100", ((10, 50), (90, 100))),
        ("0-3 300-", ((0, 3), (300, None))),
    ],
)
def test_parse_frame_ranges(text: str, ranges: tuple) -> None:
    assert pipeline_module.parse_frame_ranges(text) == ranges
    assert pipeline_module.parse_frame_ranges(pipeline_module.format_frame_ranges(ranges)) == ranges


@pytest.mark.parametrize("text", ["5-2", "a-b", "-3", "1-2-3", "x"])
def test_parse_frame_ranges_rejects(text: str) -> None:
    with pytest.raises(FaceswapError, match="--frame-ranges"):
        pipeline_module.parse_frame_ranges(text)


def test_in_frame_ranges() -> None:
    ranges = ((2, 4), (9, None))
    assert [i for i in range(12) if pipeline_module.in_frame_ranges(i, ranges)] == [
        2,
        3,
        4,
        9,
        10,
        11,
    ]
    assert pipeline_module.in_frame_ranges(5, ())


def _image_inputs(
    tmp_path: Path, n: int = 3, people: tuple[str, ...] = ("grace_hopper",)
) -> tuple[Path, Path]:
    info = make_image_folder(tmp_path / "frames", n, people=people, seed=3)

    class _Clip:  # truth_alignments only reads these
        path = info.path
        faces = info.faces
        fps = 1
        frame_count = n
        width, height = open_source(info.path).width, open_source(info.path).height

    al = truth_alignments(_Clip, tmp_path / "alignments.json")  # type: ignore[arg-type]
    return info.path, al


def test_a_single_image_converts_to_an_image_file(model_dir: Path, tmp_path: Path) -> None:
    from faceswap.io.images import read_image, write_image

    folder, al = _image_inputs(tmp_path, 1)
    (photo,) = folder.iterdir()
    plate = read_image(photo)
    png, matte = tmp_path / "swap.png", tmp_path / "matte.png"
    result = run_convert(_cfg(photo, model_dir, png, alignments=al, matte=matte))
    assert result.output == png and png.is_file() and result.faces_swapped == 1
    assert read_manifest(png)["frames"] == {"total": 1, "swapped": 1}  # type: ignore[index]
    swapped = read_image(png)
    alpha = cv2.imread(str(matte), cv2.IMREAD_UNCHANGED)
    assert swapped.shape == plate.shape and alpha.shape == plate.shape[:2]
    # Lossless: exactly the plate where the matte is 0, a new face where it is white.
    assert np.array_equal(swapped[alpha == 0], plate[alpha == 0])
    assert np.abs(swapped[alpha == 255].astype(int) - plate[alpha == 255]).mean() > 5
    assert read_provenance(png)["synthetic"] == "1"

    # A JPEG (any case of the suffix) is the same picture within JPEG error, and marked.
    jpg = run_convert(_cfg(photo, model_dir, tmp_path / "swap.JPG", alignments=al)).output
    assert jpg.read_bytes()[:2] == b"\xff\xd8"
    assert np.abs(read_image(jpg).astype(int) - swapped).mean() < 3
    assert read_provenance(jpg) == read_provenance(png)

    # A 16-bit photo keeps its depth in a PNG and becomes 8-bit in a JPEG.
    deep = write_image(tmp_path / "deep.png", plate.astype(np.uint16) * 257)
    run_convert(_cfg(deep, model_dir, tmp_path / "deep_swap.png", alignments=al))
    run_convert(_cfg(deep, model_dir, tmp_path / "deep_swap.jpg", alignments=al))
    assert read_image(tmp_path / "deep_swap.png", keep_16bit=True).dtype == np.uint16
    assert cv2.imread(str(tmp_path / "deep_swap.jpg"), cv2.IMREAD_UNCHANGED).dtype == np.uint8

    made = {p.name for p in tmp_path.iterdir()}
    bad = {
        "is a folder: give a folder name": _cfg(folder, model_dir, tmp_path / "x.png"),
        r"writes \.png, \.jpg, .* images": _cfg(photo, model_dir, tmp_path / "x.webp"),
        "an image is written whole": _cfg(photo, model_dir, tmp_path / "x.png", resume=True),
        "which an image cannot hold": _cfg(
            photo, model_dir, tmp_path / "x.png", frame_ranges="0", ranges_only=True
        ),
        "so --matte is an image too; give it an image suffix": _cfg(
            photo, model_dir, tmp_path / "x.png", matte=tmp_path / "m.mp4"
        ),
    }
    for message, cfg in bad.items():
        with pytest.raises(FaceswapError, match=message):
            run_convert(cfg)
    assert {p.name for p in tmp_path.iterdir()} == made


def test_rotate_swaps_turned_faces_found_on_the_fly(model_dir: Path, tmp_path: Path) -> None:
    photos = make_image_folder(tmp_path / "photos", 3, roll=70.0)  # 0, 70, 140 degrees
    plain = run_convert(_cfg(photos.path, model_dir, tmp_path / "plain", detector="dlib-hog"))
    turned = run_convert(
        _cfg(photos.path, model_dir, tmp_path / "turned", detector="dlib-hog", rotate="45")
    )
    assert plain.faces_swapped == 1 and turned.faces_swapped == 3
    # verify (evaluate and detect-fakes alike) reads turned faces with --rotate (an untrained
    # model draws no face, so the photos stand in for a swap of real faces).
    from faceswap.verify import VerifyConfig, run_verify

    marks = {
        rotate: run_verify(VerifyConfig(photos.path, rotate=rotate)).watermark
        for rotate in ("", "45")
    }
    assert (marks[""].faces, marks["45"].faces) == (1, 3)
    for i, file in enumerate(photos.files):
        before = cv2.cvtColor(cv2.imread(str(file)), cv2.COLOR_BGR2RGB).astype(int)
        after = _frames(tmp_path / "turned" / f"{file.stem}.png")[0].astype(int)
        # Changed under the face, and only there.
        changed = np.abs(after - before).max(axis=2) > 0
        face = photos.faces[i][0]
        side = face.box[2] - face.box[0]
        ys, xs = np.nonzero(changed)
        assert len(ys) > 0.3 * side * side, i
        middle = face.landmarks.mean(axis=0)
        assert np.hypot(xs - middle[0], ys - middle[1]).max() < 1.5 * side, i


def test_exr_plates_convert_to_exr_frames_keeping_their_floats(
    model_dir: Path, tmp_path: Path
) -> None:
    from faceswap.io.exr import read_exr, srgb_decode, write_exr

    folder, al = _image_inputs(tmp_path, 2)
    plates = tmp_path / "plates"
    plates.mkdir()
    for file in sorted(folder.iterdir()):
        display = cv2.cvtColor(cv2.imread(str(file)), cv2.COLOR_BGR2RGB)
        linear = srgb_decode(display.astype(np.float32) / 255.0)
        linear[:6, :6] = 5.0  # a light brighter than white, away from the face
        write_exr(plates / f"{file.stem}.exr", linear.astype(np.float16).astype(np.float32))
    out, matte = tmp_path / "swap", tmp_path / "matte"
    result = run_convert(
        _cfg(plates, model_dir, out, alignments=al, frame_format="exr", matte=matte)
    )
    assert result.faces_swapped == 2
    for plate_file in sorted(plates.iterdir()):
        plate = read_exr(plate_file)
        swapped = read_exr(out / plate_file.name)
        alpha = cv2.imread(str(matte / f"{plate_file.stem}.png"), cv2.IMREAD_UNCHANGED)
        outside = alpha == 0
        assert np.array_equal(swapped.rgb[outside], plate.rgb[outside])  # the plate's own floats
        assert swapped.rgb[0, 0, 0] == 5.0 and swapped.dtype == np.float16
        inside = alpha == 255
        assert np.abs(swapped.rgb[inside] - plate.rgb[inside]).mean() > 0.01
        assert read_provenance(out / plate_file.name)["synthetic"] == "1"
    # An EXR plate into a PNG: display-referred, in 16 bits.
    png = run_convert(_cfg(plates, model_dir, tmp_path / "png", alignments=al)).output
    assert cv2.imread(str(next(png.iterdir())), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    # One EXR image to one EXR image.
    single = run_convert(_cfg(sorted(plates.iterdir())[0], model_dir, tmp_path / "one.exr",
                              detector="dlib-hog"))  # fmt: skip
    assert single.faces_swapped == 1 and read_exr(single.output).rgb[0, 0, 0] == 5.0


def test_alignments_of_a_scene_suggest_its_frame_ranges(
    short_clip: ClipInfo,
    short_alignments: Path,
    model_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from faceswap.faces.alignments import load_alignments, save_alignments

    caplog.set_level("WARNING")

    al = load_alignments(short_alignments)
    al.frames = [f for f in al.frames if 4 <= f.index <= 8]
    al.extra["frame_ranges"] = "4-8"
    scene = tmp_path / "scene.json"
    save_alignments(scene, al)
    run_convert(_cfg(short_clip.path, model_dir, tmp_path / "a.mkv", alignments=scene,
                     fill_gaps=False))  # fmt: skip
    assert "holds frames 4-8 only (extract --frame-ranges): add --frame-ranges 4-8" in caplog.text
    caplog.clear()
    run_convert(_cfg(short_clip.path, model_dir, tmp_path / "b.mkv", alignments=scene,
                     frame_ranges="4-8"))  # fmt: skip
    assert "holds frames" not in caplog.text and "covers" not in caplog.text


def test_jpeg_frames_carry_provenance(model_dir: Path, tmp_path: Path) -> None:
    folder, al = _image_inputs(tmp_path, 2)
    out = tmp_path / "out"
    run_convert(_cfg(folder, model_dir, out, alignments=al, frame_format="jpg"))
    written = sorted(out.iterdir())
    assert [p.suffix for p in written] == [".jpg", ".jpg"]
    assert all(read_provenance(p)["synthetic"] == "1" for p in written)


@pytest.mark.parametrize("colour", COLOUR_MODES.names())
def test_every_colour_mode_runs(colour: str, model_dir: Path, tmp_path: Path) -> None:
    folder, al = _image_inputs(tmp_path, 2)
    out = tmp_path / "out"
    result = run_convert(_cfg(folder, model_dir, out, alignments=al, colour=colour, sharpen=0.5))
    assert result.frames == 2 and result.faces_swapped == 2
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.stem + ".png" for p in folder.iterdir() if p.suffix == ".png")
    a, b = _frames(folder), _frames(out)
    assert a[0].shape == b[0].shape and not np.array_equal(a[0], b[0])


def test_more_faces_than_batch_size(model_dir: Path, tmp_path: Path) -> None:
    folder, al = _image_inputs(tmp_path, 3, people=("astronaut", "grace_hopper"))
    out = tmp_path / "out"
    result = run_convert(_cfg(folder, model_dir, out, alignments=al, batch_size=1))
    assert result.frames == 3 and result.faces_swapped == 6 and result.frames_swapped == 3
    assert set(result.stage_seconds) == {"decode", "prepare", "infer", "blend", "encode"}


@pytest.mark.parametrize("mask", MASK_MODES.names())
def test_every_mask_mode_runs(
    mask: str, masked_model_dir: Path, segmenter_dir: Path, tmp_path: Path
) -> None:
    folder, al = _image_inputs(tmp_path, 1)
    out = tmp_path / "out"
    mask_model = segmenter_dir if MASK_MODES.get(mask).needs_segment else None
    result = run_convert(
        _cfg(folder, masked_model_dir, out, alignments=al, mask=mask, mask_model=mask_model)
    )
    assert result.faces_swapped == 1 and len(list(out.iterdir())) == 1


def test_a_mask_model_of_other_framing_is_named(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import torch

    from faceswap.nets.segmenter import Segmenter, SegmenterConfig
    from faceswap.train.segment import save_segmenter

    folder, al = _image_inputs(tmp_path, 1)
    seg = tmp_path / "seg"
    crop = {"size": 256, "coverage": 0.6, "centering": "head"}
    torch.manual_seed(0)
    save_segmenter(seg, Segmenter(SegmenterConfig(32, (4, 8))), None, {"crop": crop})
    with caplog.at_level("WARNING"):
        run_convert(_cfg(folder, model_dir, tmp_path / "out", alignments=al, mask="segment",
                         mask_model=seg))  # fmt: skip
    assert "framed with centering 'head', coverage 0.6" in caplog.text


def test_segment_masks_need_a_mask_model(model_dir: Path, tmp_path: Path) -> None:
    folder, al = _image_inputs(tmp_path, 1)
    with pytest.raises(FaceswapError, match="--mask segment needs --mask-model"):
        run_convert(_cfg(folder, model_dir, tmp_path / "out", alignments=al, mask="segment"))
    with pytest.raises(FaceswapError, match="not a mask model folder"):
        run_convert(_cfg(folder, model_dir, tmp_path / "out", alignments=al, mask="segment",
                         mask_model=model_dir))  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_a_mask_model_no_mask_mode_uses_is_named(
    model_dir: Path, segmenter_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, al = _image_inputs(tmp_path, 1)
    with caplog.at_level("WARNING"):
        run_convert(_cfg(folder, model_dir, tmp_path / "out", alignments=al,
                         mask_model=segmenter_dir))  # fmt: skip
    assert "is not used: only --mask segment and segment-both" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # used by a range of frames: no warning
        run_convert(_cfg(folder, model_dir, tmp_path / "out2", alignments=al,
                         mask_model=segmenter_dir,
                         blend_ranges=({"frames": "0-", "mask": "segment"},)))  # fmt: skip
    assert "is not used" not in caplog.text


def test_learned_mask_needs_a_model_with_one(model_dir: Path, tmp_path: Path) -> None:
    folder, al = _image_inputs(tmp_path, 1)
    with pytest.raises(FaceswapError, match="--mask hull"):
        run_convert(_cfg(folder, model_dir, tmp_path / "out", alignments=al, mask="product"))
    assert not (tmp_path / "out").exists()


# -- wrong inputs fail cleanly and leave nothing behind -----------------------------------------


def test_missing_model(short_clip: ClipInfo, tmp_path: Path) -> None:
    with pytest.raises(FaceswapError, match="no such model folder"):
        run_convert(_cfg(short_clip.path, tmp_path / "nope", tmp_path / "o.mp4"))
    assert _leftovers(tmp_path, set()) == []


def test_model_from_another_preset(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    from tests.convert.conftest import make_model_dir

    other = make_model_dir(tmp_path / "other", resolution=64)
    # Weights of a 64 px model under the 32 px model's description.
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("model.json", "model_card.json"):
        (bad / name).write_bytes((model_dir / name).read_bytes())
    (bad / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(FaceswapError, match="another preset"):
        run_convert(_cfg(short_clip.path, bad, tmp_path / "o.mp4", alignments=short_alignments))
    assert not (tmp_path / "o.mp4").exists()


def test_unreadable_video(model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01 definitely not a video" * 100)
    with pytest.raises(FaceswapError, match=r"broken\.mp4"):
        run_convert(_cfg(bad, model_dir, tmp_path / "o.mp4"))
    assert _leftovers(tmp_path, {"broken.mp4"}) == []


def test_output_not_writable(short_clip: ClipInfo, model_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(FaceswapError, match="not a folder"):
        run_convert(_cfg(short_clip.path, model_dir, blocker / "out.mp4"))
    with pytest.raises(FaceswapError, match="container"):
        run_convert(_cfg(short_clip.path, model_dir, tmp_path / "out.xyz"))
    with pytest.raises(FaceswapError, match="overwrite the input"):
        run_convert(_cfg(short_clip.path, model_dir, short_clip.path))


def test_alignments_of_another_video(short_clip: ClipInfo, model_dir: Path, tmp_path: Path) -> None:
    al = truth_alignments(short_clip, tmp_path / "al.json", frame_count=99)
    out = tmp_path / "o.mp4"
    with pytest.raises(FaceswapError, match=r"99 frames .* has 16"):
        run_convert(_cfg(short_clip.path, model_dir, out, alignments=al))
    assert _leftovers(tmp_path, {"al.json"}) == []


def test_alignments_of_a_video_of_another_name_are_questioned(
    short_clip: ClipInfo,
    short_alignments: Path,
    model_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import shutil

    take2 = shutil.copy(short_clip.path, tmp_path / "take2.mp4")  # the same length and size
    run_convert(_cfg(short_clip.path, model_dir, tmp_path / "a.mkv", alignments=short_alignments))
    assert "was extracted from" not in caplog.text
    run_convert(_cfg(take2, model_dir, tmp_path / "b.mkv", alignments=short_alignments))
    assert f"was extracted from {short_clip.path.name}, not take2.mp4" in caplog.text


def test_bad_option_values(short_clip: ClipInfo, model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FaceswapError, match="choose from"):
        _cfg(short_clip.path, model_dir, tmp_path / "o.mp4", colour="sepia")
    with pytest.raises(FaceswapError, match="--batch-size"):
        _cfg(short_clip.path, model_dir, tmp_path / "o.mp4", batch_size=0)
    with pytest.raises(FaceswapError, match=r"--erode-top must be in \[-50, 50\] percent"):
        _cfg(short_clip.path, model_dir, tmp_path / "o.mp4", erode_top=60)
    # a df model cannot morph: refused before anything is written
    with pytest.raises(FaceswapError, match="use a liae preset, or drop --morph"):
        run_convert(_cfg(short_clip.path, model_dir, tmp_path / "o.mp4", morph=0.5))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_failure_mid_run_removes_the_temp_output(
    short_clip: ClipInfo,
    short_alignments: Path,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = pipeline_module._compose
    calls = {"n": 0}

    def failing(*args: object, **kw: object) -> object:
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("blend exploded")
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline_module, "_compose", failing)
    with pytest.raises(RuntimeError, match="blend exploded"):
        run_convert(
            _cfg(short_clip.path, model_dir, tmp_path / "o.mp4", alignments=short_alignments)
        )
    assert _leftovers(tmp_path, set()) == []


def test_out_of_memory_in_inference_is_one_clear_line(
    short_clip: ClipInfo, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from faceswap.convert.swapper import Swapper

    def exhausted(self: Swapper, crops: np.ndarray) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Swapper, "__call__", exhausted)
    al = truth_alignments(short_clip, tmp_path / "alignments.json")
    out = tmp_path / "out.mp4"
    with pytest.raises(FaceswapError) as err:
        run_convert(_cfg(short_clip.path, model_dir, out, alignments=al, batch_size=8))
    assert str(err.value) == (
        "out of host memory on cpu at --batch-size 8; rerun with --batch-size 4 or add --amp"
    )
    assert _leftovers(tmp_path, {"alignments.json"}) == []


def test_frame_marker_hook_marks_every_frame(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faceswap.provenance as provenance

    class Corner:
        name = "corner"

        def __call__(
            self, frame: np.ndarray, index: int, coverage: np.ndarray | None
        ) -> np.ndarray:
            out = frame.copy()
            out[0, 0] = (index % 256, 7, 11)
            return out

    monkeypatch.setattr(provenance, "frame_marker", lambda: Corner())
    folder, al = _image_inputs(tmp_path, 2)
    out = tmp_path / "out"
    run_convert(_cfg(folder, model_dir, out, alignments=al))
    for i, frame in enumerate(_frames(out)):
        assert tuple(frame[0, 0]) == (i, 7, 11)


def test_the_watermark_is_on_by_default_and_only_under_the_faces(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import faceswap.provenance as provenance
    from faceswap.watermark import STRENGTH

    out, matte = tmp_path / "marked", tmp_path / "matte"
    run_convert(_cfg(short_clip.path, model_dir, out, alignments=short_alignments, matte=matte))
    monkeypatch.setattr(provenance, "frame_marker", lambda: None)
    bare = tmp_path / "bare"
    run_convert(_cfg(short_clip.path, model_dir, bare, alignments=short_alignments))
    for i, (a, b) in enumerate(zip(_frames(out), _frames(bare), strict=True)):
        alpha = cv2.imread(str(matte / f"frame_{i:06d}.png"), cv2.IMREAD_UNCHANGED)
        diff = a.astype(np.int16) - b
        assert not diff[alpha == 0].any()  # faceless frames and backgrounds: untouched
        assert np.abs(diff).max() <= 2 * STRENGTH
        if i not in short_clip.blank_frames:
            assert np.count_nonzero(diff[alpha == 255]) > diff[alpha == 255].size // 2


def _empty_alignments(clip: ClipInfo, path: Path) -> Path:
    from faceswap.faces.alignments import Alignments, FrameRecord, save_alignments
    from tests.convert.conftest import MODEL_CROP

    info = probe(clip.path)
    frames = [FrameRecord(index=i, timestamp=0.0, faces=()) for i in range(info.frame_count)]
    al = Alignments(
        str(clip.path), info.frame_count, info.fps, info.width, info.height, MODEL_CROP,
        "none", frames,
    )  # fmt: skip
    save_alignments(path, al)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("audio_offset", "rotation"), [(-0.15, 0), (0.0, 90)], ids=["audio-first", "rotated"]
)
def test_passthrough_keeps_audio_lead_and_display_rotation(
    audio_offset: float, rotation: int, model_dir: Path, tmp_path: Path
) -> None:
    # Matroska keeps audio that starts before the first frame (mp4 trims it: see io).
    from tests.media import make_clip

    clip = make_clip(
        tmp_path / "in.mp4", frames=10, width=320, height=192, audio=True,
        audio_offset=audio_offset, blank_frames=tuple(range(10)), rotation=rotation,
    )  # fmt: skip
    al = _empty_alignments(clip, tmp_path / "al.json")
    out = tmp_path / ("out.mkv" if audio_offset < 0 else "out.mp4")
    # codec auto: a hardware H.264 encoder where one works, else libx264.
    result = run_convert(_cfg(clip.path, model_dir, out, alignments=al, codec="auto"))
    src, dst = probe(clip.path), probe(out)
    assert result.frames_swapped == 0 and dst.frame_count == src.frame_count == 10
    assert dst.codec == "h264"
    # Frames come out upright at the displayed size; players need no rotation flag.
    assert (dst.width, dst.height) == (src.width, src.height)
    assert dst.rotation == 0
    assert dst.audio_offset == pytest.approx(src.audio_offset, abs=0.01)
    assert _audio_seconds(out) == pytest.approx(_audio_seconds(clip.path), abs=0.03)
    np.testing.assert_allclose(
        beep_onsets(out) + dst.audio_offset, beep_onsets(clip.path) + src.audio_offset, atol=0.005
    )
    for a, b in zip(_frames(out), _frames(clip.path), strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0


def test_faces_whose_crops_were_deleted_are_not_swapped(model_dir: Path, tmp_path: Path) -> None:
    import dataclasses

    from faceswap.faces.alignments import load_alignments, save_alignments

    folder, al_path = _image_inputs(tmp_path, 3)
    al = load_alignments(al_path)
    faces_dir = tmp_path / "faces"
    faces_dir.mkdir()
    frames = []
    for frame in al.frames:  # as extract writes them: a crop file per face
        named = tuple(dataclasses.replace(f, crop_file=f"frame_{frame.index:06d}_{k}.png")
                      for k, f in enumerate(frame.faces))  # fmt: skip
        frames.append(dataclasses.replace(frame, faces=named))
        for face in named:
            (faces_dir / face.crop_file).write_bytes(b"crop")
    save_alignments(faces_dir / "alignments.json", dataclasses.replace(al, frames=frames))
    (faces_dir / "frame_000001_0.png").unlink()  # the user rejected this face
    result = run_convert(_cfg(folder, model_dir, tmp_path / "out", alignments=faces_dir))
    assert result.faces_swapped == 2
    before, after = _frames(folder), _frames(tmp_path / "out")
    np.testing.assert_array_equal(after[1], before[1])
    assert not np.array_equal(after[0], before[0]) and not np.array_equal(after[2], before[2])
    # The file alone, away from its crops, keeps every face.
    alone = tmp_path / "alone"
    alone.mkdir()
    (faces_dir / "alignments.json").rename(alone / "alignments.json")
    result = run_convert(_cfg(folder, model_dir, tmp_path / "out2", alignments=alone))
    assert result.faces_swapped == 3


def test_min_size_and_max_faces_apply_to_alignments(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder, al = _image_inputs(tmp_path, 2, people=("astronaut", "grace_hopper"))
    one = run_convert(_cfg(folder, model_dir, tmp_path / "one", alignments=al, max_faces=1))
    assert one.faces_swapped == 2
    assert "no face swapped" not in caplog.text
    none = run_convert(_cfg(folder, model_dir, tmp_path / "none", alignments=al, min_size=2000))
    assert none.faces_swapped == 0
    assert "no face swapped in 2 frames" in caplog.text  # said, not silently passed through
    # With no face swapped the frames pass through byte for byte.
    for a, b in zip(_frames(tmp_path / "none"), _frames(folder), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_video_without_audio(
    clip_with_blank_frames: ClipInfo, model_dir: Path, tmp_path: Path
) -> None:
    al = _empty_alignments(clip_with_blank_frames, tmp_path / "al.json")
    out = tmp_path / "silent.mp4"
    run_convert(_cfg(clip_with_blank_frames.path, model_dir, out, alignments=al))
    src, dst = probe(clip_with_blank_frames.path), probe(out)
    assert not dst.has_audio and dst.frame_count == src.frame_count
    assert dst.fps == src.fps


def _deep_frames(path: Path) -> list[np.ndarray]:
    return [np.array(f.image) for f in open_source(path, deep=True).iter_frames()]


def _with_low_bits(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The clip's 8-bit frames at 16 bits, with a horizontal ramp below the 8-bit step: a
    source whose low bits carry detail an 8-bit pipeline cannot keep."""
    ramp = np.linspace(0, 256, frames[0].shape[1], endpoint=False).astype(np.uint16)
    return [np.minimum(f.astype(np.uint32) * 257 + ramp[None, :, None], 65535).astype(np.uint16)
            for f in frames]  # fmt: skip


def _encode_rgb48(frames: list[np.ndarray], path: Path, *args: str) -> Path:
    """Encode uint16 RGB frames (30000/1001 fps) with ffmpeg output ``args`` to ``path``."""
    h, w = frames[0].shape[:2]
    head = [find_ffmpeg(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb48le"]
    head += ["-s", f"{w}x{h}", "-framerate", "30000/1001", "-i", "-"]
    data = b"".join(f.tobytes() for f in frames)
    subprocess.run([*head, *args, str(path)], input=data, check=True)
    return path


@pytest.mark.slow
def test_a_16_bit_source_keeps_its_depth_where_frames_pass_through(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    """FFV1 in 16-bit RGB: lossless both ways, so faceless frames come back bit for bit."""
    frames = _with_low_bits(_frames(short_clip.path))
    deep = _encode_rgb48(frames, tmp_path / "deep.mkv", "-c:v", "ffv1", "-pix_fmt", "gbrp16le")
    assert probe(deep).bit_depth == 16
    out = tmp_path / "out.mkv"
    run_convert(_cfg(deep, model_dir, out, alignments=short_alignments, codec="ffv1"))
    assert probe(out).pix_fmt == "gbrp16le"
    before, after = _deep_frames(deep), _deep_frames(out)
    assert before[0].dtype == np.uint16 and np.array_equal(before[0], frames[0])
    for i in range(16):
        if i in short_clip.blank_frames:
            assert np.array_equal(after[i], before[i]), i  # every one of the 16 bits
        else:
            assert not np.array_equal(after[i], before[i]), i  # a face was swapped
    # In 8 bits the low bits are lost, also where nothing was swapped.
    flat = tmp_path / "flat.mkv"
    run_convert(_cfg(deep, model_dir, flat, alignments=short_alignments, codec="ffv1",
                     bit_depth="8"))  # fmt: skip
    assert probe(flat).pix_fmt == "bgr0"
    lost = np.abs(_frames(flat)[0].astype(int) * 257 - before[0].astype(int))
    assert 64 < lost.mean() < 257  # about half an 8-bit step


@pytest.mark.slow
def test_a_10_bit_video_converts_to_10_bits_with_its_low_bits(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    """A 10-bit SDR master (ProRes, a camera's 10-bit H.264/HEVC) is written in 10 bits."""
    frames = _with_low_bits(_frames(short_clip.path))
    args = ["-i", str(short_clip.path), "-map", "0:v", "-map", "1:a", "-c:a", "copy"]
    args += ["-c:v", "libx264", "-crf", "0", "-colorspace", "bt709"]
    args += ["-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv444p10le"]
    src = _encode_rgb48(frames, tmp_path / "ten.mov", *args)
    assert probe(src).bit_depth == 10 and not probe(src).hdr
    errors = {}
    for depth in ("auto", "8"):
        out = tmp_path / f"out_{depth}.mov"
        run_convert(_cfg(src, model_dir, out, alignments=short_alignments, crf=0,
                         pix_fmt="yuv444p10le" if depth == "auto" else "yuv444p",
                         bit_depth=depth))  # fmt: skip
        written = probe(out)
        assert written.bit_depth == (10 if depth == "auto" else 8) and written.has_audio
        before, after = _deep_frames(src), _deep_frames(out)
        blank = short_clip.blank_frames[0]
        scale = 257 if after[blank].dtype == np.uint8 else 1
        errors[depth] = np.abs(after[blank].astype(int) * scale - before[blank]).mean()
    # Through 10-bit YUV the faceless frames keep well under half the error of 8 bits.
    assert errors["auto"] < 0.5 * errors["8"], errors
    # auto picks the encoder's 10-bit format for such a source, but for H.264, whose 10-bit
    # profile few players decode: 8 bits there unless asked.
    for codec, pix_fmt in (("libx265", "yuv420p10le"), ("libx264", "yuv420p")):
        auto = tmp_path / f"auto_{codec}.mp4"
        run_convert(_cfg(src, model_dir, auto, alignments=short_alignments, codec=codec))
        assert probe(auto).pix_fmt == pix_fmt, codec


def test_16_bit_frames_in_16_bit_frames_out(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    from faceswap.io.images import read_image, write_image

    frames = _with_low_bits(_frames(short_clip.path))[:4]
    folder = tmp_path / "plates"
    folder.mkdir()
    for i, frame in enumerate(frames[:3]):
        write_image(folder / f"plate_{i:04d}.tif", frame)
    # An 8-bit frame in the same folder is widened, not refused.
    write_image(folder / "plate_0003.png", (frames[3] >> 8).astype(np.uint8))
    al = truth_alignments(short_clip, tmp_path / "al.json", frame_count=4)
    out = tmp_path / "out"
    run_convert(_cfg(folder, model_dir, out, alignments=al, frame_format="tif"))
    written = sorted(out.iterdir())
    assert [p.name for p in written][:3] == ["plate_0000.tif", "plate_0001.tif", "plate_0002.tif"]
    back = [read_image(p, keep_16bit=True) for p in written]
    assert all(b.dtype == np.uint16 for b in back[:3]) and back[3].dtype == np.uint8
    assert np.array_equal(back[0], frames[0]) and np.array_equal(back[1], frames[1])  # blank
    assert not np.array_equal(back[2], frames[2])  # swapped, in 16 bits
    assert read_provenance(written[2])["synthetic"] == "1"
    with pytest.raises(FaceswapError, match="--bit-depth: choose from auto, 8"):
        _cfg(folder, model_dir, out, bit_depth="10")


def test_a_stopped_frames_run_resumes_to_the_same_frames(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    def cfg(out: str, **kw: object) -> ConvertConfig:
        return _cfg(short_clip.path, model_dir, tmp_path / out, alignments=short_alignments,
                    matte=tmp_path / f"{out}_matte", **kw)  # fmt: skip

    straight = run_convert(cfg("straight"))
    write = pipeline_module._FolderSink.write

    def stop_after_five(
        self: pipeline_module._FolderSink, image: np.ndarray, name: str, matte: object = None
    ) -> None:
        if self.frames_written == 5:
            raise KeyboardInterrupt  # Ctrl-C, or SIGTERM, which convert turns into one
        write(self, image, name, matte)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(pipeline_module._FolderSink, "write", stop_after_five)
        with pytest.raises(KeyboardInterrupt):
            run_convert(cfg("out"))
    partial = tmp_path / ".out.partial"
    assert len(list(partial.glob("*.png"))) == 5 and not (tmp_path / "out").exists()
    with pytest.raises(FaceswapError, match="holds the frames of a run that stopped"):
        run_convert(cfg("out"))
    with pytest.raises(FaceswapError, match="other settings"):
        run_convert(cfg("out", colour="avg", resume=True))
    resumed = run_convert(cfg("out", resume=True))
    assert (resumed.resumed, resumed.frames) == (5, 11) and not partial.exists()
    for name in ("straight", "straight_matte"):
        theirs = sorted((tmp_path / name).iterdir())
        ours = sorted((tmp_path / name.replace("straight", "out")).iterdir())
        assert [p.name for p in ours] == [p.name for p in theirs]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(ours, theirs, strict=True))
    manifest = read_manifest(tmp_path / "out")
    assert manifest is not None and manifest["frames"]["total"] == 16
    assert manifest["frames"]["swapped"] == straight.frames_swapped
    with pytest.raises(FaceswapError, match="nothing to resume"):
        run_convert(cfg("again", resume=True))
    with pytest.raises(FaceswapError, match="--resume goes on with a folder of frames"):
        run_convert(_cfg(short_clip.path, model_dir, tmp_path / "o.mp4", resume=True))


def test_sigterm_stops_a_convert_like_ctrl_c() -> None:
    import os
    import signal
    import time

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), pipeline_module._sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
    assert signal.getsignal(signal.SIGTERM) is before


def test_blend_ranges_set_the_blend_of_their_frames(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    def frames(out: str, **kw: object) -> dict[str, bytes]:
        run_convert(_cfg(short_clip.path, model_dir, tmp_path / out,
                         alignments=short_alignments, **kw))  # fmt: skip
        return {p.name: p.read_bytes() for p in sorted((tmp_path / out).iterdir())}

    base = frames("base")
    other = frames("other", colour="none", erode=20.0)
    ranges = [{"frames": "3-5", "color": "none", "erode": 20}, {"frames": 12, "colour": "none"}]
    ranges[1]["erode"] = 20
    mixed = frames("mixed", blend_ranges=ranges)
    for i in range(16):
        name = f"frame_{i:06d}.png"
        expected = other if i in (3, 4, 5, 12) else base
        assert mixed[name] == expected[name], i
    assert base["frame_000004.png"] != other["frame_000004.png"]  # the settings matter
    manifest = read_manifest(tmp_path / "mixed")
    assert manifest is not None
    assert manifest["settings"]["blend_ranges"][0] == {"frames": "3-5", "colour": "none",
                                                      "erode": 20}  # fmt: skip


def test_blend_ranges_are_checked(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    def cfg(*entries: object) -> ConvertConfig:
        return _cfg(short_clip.path, model_dir, tmp_path / "o", blend_ranges=entries)

    with pytest.raises(FaceswapError, match="unknown setting dilate; an entry may set mask"):
        cfg({"frames": "1-2", "dilate": 3})
    with pytest.raises(FaceswapError, match="each entry needs frames"):
        cfg({"erode": 3})
    with pytest.raises(FaceswapError, match=r"frames 1-2: --erode must be in \[-50, 50\]"):
        cfg({"frames": "1-2", "erode": 99})
    with pytest.raises(FaceswapError, match="unknown mask mode 'hul'"):
        cfg({"frames": "1-", "mask": "hul"})
    with pytest.raises(FaceswapError, match="needs a model with a learned mask"):
        run_convert(cfg({"frames": "1-", "mask": "learned"}))
    assert not (tmp_path / "o").exists()
    from click.testing import CliRunner

    from faceswap.cli import cli

    yaml_file = tmp_path / "ranges.yaml"
    yaml_file.write_text("- {frames: 0-3, colour: sot}\n- frames: 10-\n  erode: 5\n")
    args = ["convert", str(short_clip.path), "-m", str(model_dir), "-o", str(tmp_path / "x")]
    args += ["-a", str(short_alignments), "--device", "cpu", "--no-progress"]
    result = CliRunner().invoke(cli, [*args, "--blend-ranges", str(yaml_file)])
    assert result.exit_code == 0, result.output
    assert read_manifest(tmp_path / "x")["settings"]["blend_ranges"][1] == {  # type: ignore[index]
        "frames": "10-", "erode": 5}  # fmt: skip
    yaml_file.write_text("- frames: [0-3\n")
    result = CliRunner().invoke(cli, [*args, "--blend-ranges", str(yaml_file)])
    assert result.exit_code == 2 and "not valid YAML" in result.output


def test_output_scale_writes_smaller_frames_of_the_same_video(
    short_clip: ClipInfo, short_alignments: Path, model_dir: Path, tmp_path: Path
) -> None:
    out, matte = tmp_path / "half.mp4", tmp_path / "half_matte.mp4"
    run_convert(_cfg(short_clip.path, model_dir, out, alignments=short_alignments, matte=matte,
                     output_scale=50))  # fmt: skip
    src, written = probe(short_clip.path), probe(out)
    assert (written.width, written.height) == (src.width // 2, src.height // 2)
    assert (probe(matte).width, probe(matte).height) == (src.width // 2, src.height // 2)
    assert written.frame_count == src.frame_count and written.fps == src.fps
    assert written.has_audio
    full = _frames(short_clip.path)[0]  # a faceless frame, as the source shrinks it
    half = _frames(out)[0].astype(float)
    small = cv2.resize(full, (src.width // 2, src.height // 2), interpolation=cv2.INTER_AREA)
    assert np.abs(half - small).mean() < 3
    frames = tmp_path / "frames"
    run_convert(_cfg(short_clip.path, model_dir, frames, alignments=short_alignments,
                     output_scale=25, frame_ranges="0", ranges_only=True))  # fmt: skip
    shot = cv2.imread(str(frames / "frame_000000.png"))
    assert shot.shape[:2] == (2 * round(src.height / 8), 2 * round(src.width / 8))
    with pytest.raises(FaceswapError, match="--output-scale must be in"):
        _cfg(short_clip.path, model_dir, out, output_scale=0)


def test_a_convert_says_what_it_is_about_to_do(
    short_clip: ClipInfo,
    short_alignments: Path,
    model_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="faceswap.convert.pipeline"):
        run_convert(_cfg(short_clip.path, model_dir, tmp_path / "o.mkv",
                         alignments=short_alignments, colour="lct"))  # fmt: skip
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("converting")]
    assert line.startswith(f"converting {short_clip.path.name} (640x360, 29.97 fps, 16 frames)")
    assert f"faces from {short_alignments.name}; mask hull, colour lct" in line
    assert line.endswith(
        f"writing {tmp_path / 'o.mkv'} (libx264 -crf 18 -preset ultrafast -pix_fmt yuv420p)"
    )


def test_frames_an_every_nth_alignments_file_leaves_out_are_detected(
    short_clip: ClipInfo,
    short_alignments: Path,
    model_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from faceswap.faces.alignments import load_alignments, save_alignments

    full = load_alignments(short_alignments)
    sparse = tmp_path / "every_4th.json"  # as `extract --every-nth 4` writes it
    save_alignments(sparse, dataclasses.replace(full, frames=full.frames[::4]))
    with_faces = 16 - len(short_clip.blank_frames)
    with caplog.at_level(logging.INFO, logger="faceswap.convert.pipeline"):
        filled = run_convert(
            _cfg(short_clip.path, model_dir, tmp_path / "f.mkv", alignments=sparse)
        )
    assert filled.frames_swapped >= with_faces - 1  # the detector finds (nearly) every face
    assert "the other 12 are detected on the fly" in caplog.text
    assert "faces from every_4th.json and found by auto in the 12 frames it leaves out" in (
        caplog.text
    )
    gaps = run_convert(_cfg(short_clip.path, model_dir, tmp_path / "g.mkv", alignments=sparse,
                            fill_gaps=False))  # fmt: skip
    covered = [r for r in full.frames[::4] if r.faces]
    assert gaps.frames_swapped == len(covered)  # only the frames the file holds
    # A file holding every frame needs no detector: --ref is then said to be unused.
    run_convert(_cfg(short_clip.path, model_dir, tmp_path / "h.mkv", alignments=short_alignments,
                     refs=(short_clip.path,)))  # fmt: skip
    assert "--ref is not used" in caplog.text
