"""The alignments file: round trip, version checks, corrupt files."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from faceswap.errors import FaceswapError
from faceswap.faces.align import MEAN_FACE, CropSpec, alignment_matrix
from faceswap.faces.alignments import (
    SCHEMA_VERSION,
    Alignments,
    FaceRecord,
    FrameRecord,
    load_alignments,
    reviewed_frames,
    save_alignments,
)


def _sample(rng: np.random.Generator, with_descriptor: bool) -> Alignments:
    spec = CropSpec(size=64, coverage=0.7, centering="legacy")
    frames = []
    for idx in (0, 2, 4):
        faces = []
        for k in range(idx // 2):  # 0, 1 and 2 faces
            lm = (MEAN_FACE * rng.uniform(50, 90) + rng.uniform(0, 300, 2)).astype(np.float32)
            faces.append(
                FaceRecord(
                    box=np.array([*lm.min(0), *lm.max(0)], np.float32),
                    score=float(rng.uniform(0, 2)),
                    landmarks=lm,
                    matrix=alignment_matrix(lm, spec),
                    crop_file=f"frame_{idx:06d}_{k}.png",
                    descriptor=rng.normal(size=128).astype(np.float32) if with_descriptor else None,
                    track_id=k,
                )
            )
        frames.append(FrameRecord(idx, idx / 29.97, tuple(faces), detected=idx != 2))
    return Alignments(
        source="clip.mp4",
        frame_count=5,
        fps=Fraction(30000, 1001),
        width=640,
        height=360,
        crop=spec,
        detector="dlib-hog",
        frames=frames,
        extra={"every_nth": 2},
    )


@pytest.mark.parametrize("suffix", [".json", ".npz"])
@pytest.mark.parametrize("with_descriptor", [False, True])
def test_round_trip(tmp_path: Path, with_descriptor: bool, suffix: str) -> None:
    al = _sample(np.random.default_rng(0), with_descriptor)
    path = tmp_path / f"alignments{suffix}"
    save_alignments(path, al)
    if suffix == ".json":
        assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION
        back = load_alignments(tmp_path)  # a folder means its alignments.json
    else:
        back = load_alignments(path)
    assert back.fps == Fraction(30000, 1001)
    assert (back.source, back.frame_count, back.width, back.height, back.detector) == (
        "clip.mp4", 5, 640, 360, "dlib-hog",
    )  # fmt: skip
    assert back.crop == al.crop and back.extra == {"every_nth": 2}
    assert [f.index for f in back.frames] == [0, 2, 4]
    assert [f.detected for f in back.frames] == [True, False, True]
    assert back.face_count == 3 and back.frames_without_face == 1
    for fa, fb in zip(al.frames, back.frames, strict=True):
        assert fb.timestamp == pytest.approx(fa.timestamp, abs=1e-6)
        for a, b in zip(fa.faces, fb.faces, strict=True):
            np.testing.assert_allclose(b.landmarks, a.landmarks, atol=1e-3)
            np.testing.assert_allclose(b.box, a.box, atol=1e-2)
            np.testing.assert_array_equal(b.matrix, a.matrix)
            assert b.landmarks.dtype == np.float32 and b.matrix.dtype == np.float64
            assert (b.crop_file, b.track_id) == (a.crop_file, a.track_id)
            assert b.score == pytest.approx(a.score, abs=1e-4)
            if with_descriptor:
                np.testing.assert_allclose(b.descriptor, a.descriptor, atol=1e-5)
            else:
                assert b.descriptor is None


def test_image_folder_has_no_fps(tmp_path: Path) -> None:
    al = _sample(np.random.default_rng(1), False)
    al.fps = None
    save_alignments(tmp_path / "a.json", al)
    assert load_alignments(tmp_path / "a.json").fps is None


def test_failed_save_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "alignments.json"
    save_alignments(path, _sample(np.random.default_rng(0), False))
    before = path.read_bytes()
    bad = _sample(np.random.default_rng(0), False)
    bad.extra = {"x": object()}  # not JSON-serialisable: the write fails midway
    with pytest.raises(TypeError):
        save_alignments(path, bad)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alignments.json"]


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "alignments.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _valid_dict(tmp_path: Path) -> dict:
    path = tmp_path / "ok.json"
    save_alignments(path, _sample(np.random.default_rng(0), False))
    return json.loads(path.read_text())


def test_newer_version_is_refused(tmp_path: Path) -> None:
    raw = _valid_dict(tmp_path)
    raw["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(FaceswapError, match="newer than this faceswap supports"):
        load_alignments(_write(tmp_path, raw))


@pytest.mark.parametrize("version", [0, "1", None])
def test_invalid_version_is_refused(tmp_path: Path, version: object) -> None:
    raw = _valid_dict(tmp_path)
    raw["schema_version"] = version
    with pytest.raises(FaceswapError, match="schema_version"):
        load_alignments(_write(tmp_path, raw))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FaceswapError, match="run `faceswap extract`"):
        load_alignments(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema_version": 1, "frames": [', "not valid JSON at line 1"),
        ("[1, 2, 3]", "not a faceswap alignments file"),
        ({"hello": "world"}, "not a faceswap alignments file"),
    ],
)
def test_corrupt_file(tmp_path: Path, content: object, message: str) -> None:
    with pytest.raises(FaceswapError, match=message):
        load_alignments(_write(tmp_path, content))


def test_truncated_landmarks_named_in_error(tmp_path: Path) -> None:
    raw = _valid_dict(tmp_path)
    raw["frames"][1]["faces"][0]["landmarks"] = raw["frames"][1]["faces"][0]["landmarks"][:60]
    with pytest.raises(FaceswapError, match=r"frame 2 face 0 landmarks has shape \(60, 2\)"):
        load_alignments(_write(tmp_path, raw))


def test_missing_field_named_in_error(tmp_path: Path) -> None:
    raw = _valid_dict(tmp_path)
    del raw["crop"]
    with pytest.raises(FaceswapError, match="missing field 'crop'"):
        load_alignments(_write(tmp_path, raw))


def test_binary_garbage(tmp_path: Path) -> None:
    path = tmp_path / "alignments.json"
    path.write_bytes(b"\x80\x81\xff" * 10)
    with pytest.raises(FaceswapError, match="corrupt alignments file"):
        load_alignments(path)


def test_npz_refuses_pickles_and_garbage(tmp_path: Path) -> None:
    path = tmp_path / "alignments.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FaceswapError, match="corrupt alignments file"):
        load_alignments(path)
    # An object array can only be read by unpickling: refused, never executed.
    np.savez(path, header=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FaceswapError, match="corrupt alignments file"):
        load_alignments(path)


def test_npz_version_checks_apply(tmp_path: Path) -> None:
    path = tmp_path / "alignments.npz"
    save_alignments(path, _sample(np.random.default_rng(0), False))
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(arrays["header"].tobytes())
    header["schema_version"] = SCHEMA_VERSION + 1
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(FaceswapError, match="newer than this faceswap supports"):
        load_alignments(path)


def test_reviewed_frames_drop_the_faces_whose_crops_were_deleted(tmp_path: Path) -> None:
    al = _sample(np.random.default_rng(3), with_descriptor=False)  # faces 0, 1 and 2 a frame
    names = [f.crop_file for fr in al.frames for f in fr.faces]
    assert len(names) == 3
    # An alignments file away from its crops keeps every face.
    frames, dropped = reviewed_frames(al, tmp_path)
    assert dropped == 0 and [len(f.faces) for f in frames] == [0, 1, 2]
    for name in names[:2]:
        (tmp_path / name).write_bytes(b"")  # the third crop was deleted in the review
    frames, dropped = reviewed_frames(al, tmp_path)
    assert dropped == 1 and [len(f.faces) for f in frames] == [0, 1, 1]
    assert [f.index for f in frames] == [f.index for f in al.frames]
    assert frames[2].faces[0].crop_file == names[1]
