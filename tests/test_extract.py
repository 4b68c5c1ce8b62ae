"""The extract stage end to end on generated clips (tests/media.py) and its CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from faceswap.cli import cli
from faceswap.errors import FaceswapError
from faceswap.extract import CONFIG_NAME, ExtractConfig, run_extract
from faceswap.faces.align import invert_affine, transform_points
from faceswap.faces.alignments import load_alignments, save_alignments
from tests.media import face_photo, make_clip, make_image_folder


def _cfg(src: Path, out: Path, **kw) -> ExtractConfig:
    kw.setdefault("detector", "dlib-hog")
    kw.setdefault("size", 64)
    return ExtractConfig(input=src, output=out, progress=False, **kw)


def _eye(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[45] - lm[36]))


def _assert_on_face(errors: list[float]) -> None:
    errors_arr = np.asarray(errors)
    assert np.mean(errors_arr < 0.08) >= 0.9, np.round(errors_arr, 3)
    assert errors_arr.max() < 0.25, np.round(errors_arr, 3)


def test_one_face_clip_found_in_nearly_every_frame(clip_one_face, tmp_path: Path) -> None:
    out = tmp_path / "faces"
    result = run_extract(_cfg(clip_one_face.path, out))
    n = clip_one_face.frame_count
    assert result.frames == n and result.resumed == 0
    assert result.faces >= 0.95 * n and result.frames_without_face <= 0.05 * n
    assert result.detector == "dlib-hog" and result.fps > 0
    assert f"{result.frames_without_face} frame" in result.summary()
    al = load_alignments(out)
    assert al.frame_count == n and al.fps == clip_one_face.fps
    assert (al.width, al.height) == (640, 360) and al.crop.size == 64
    assert [f.index for f in al.frames] == list(range(n))
    assert any(not f.detected for f in al.frames)  # tracked between detections
    errors = []
    for fr in al.frames:
        assert fr.timestamp == pytest.approx(fr.index / float(clip_one_face.fps), abs=1e-3)
        truth = clip_one_face.faces[fr.index][0].landmarks
        for face in fr.faces:
            errors.append(np.abs(face.landmarks - truth).mean() / _eye(truth))
            crop = cv2.imread(str(out / face.crop_file))
            assert crop.shape == (64, 64, 3)
            back = transform_points(transform_points(face.landmarks, face.matrix),
                                    invert_affine(face.matrix))  # fmt: skip
            assert np.abs(back - face.landmarks).max() < 0.5
    # The landmarks land on the face: mean error (in eye distances) small in nearly every
    # frame, and never off the face.
    _assert_on_face(errors)
    saved = json.loads((out / CONFIG_NAME).read_text())
    assert saved["detector_used"] == "dlib-hog" and saved["size"] == 64


def test_rerun_resumes_and_finishes_only_missing_frames(clip_one_face, tmp_path: Path) -> None:
    out = tmp_path / "faces"
    run_extract(_cfg(clip_one_face.path, out, every_nth=2))
    al = load_alignments(out)
    total = len(al.frames)
    # Pretend the run stopped after 10 frames.
    al.frames = al.frames[:10]
    save_alignments(out / "alignments.json", al)
    again = run_extract(_cfg(clip_one_face.path, out, every_nth=2))
    assert again.resumed == 10 and again.frames == total - 10
    assert [f.index for f in load_alignments(out).frames] == list(range(0, 2 * total, 2))
    done = run_extract(_cfg(clip_one_face.path, out, every_nth=2))
    assert done.frames == 0 and done.resumed == total
    # --no-resume starts over and removes the old crops first.
    fresh = run_extract(_cfg(clip_one_face.path, out, every_nth=2, resume=False))
    assert fresh.resumed == 0 and fresh.frames == total


def test_starting_over_also_removes_the_crops_sort_trashed(clip_one_face, tmp_path: Path) -> None:
    from faceswap.sort import SortConfig, run_sort

    out = tmp_path / "faces"
    run_extract(_cfg(clip_one_face.path, out))
    run_sort(SortConfig(faces=out, by="blur", keep=5))
    assert len(list((out / "trash").glob("*.png"))) > 0
    run_extract(_cfg(clip_one_face.path, out, resume=False))
    assert not list((out / "trash").glob("*.png"))
    # So the same sort again has nothing in its way.
    again = run_sort(SortConfig(faces=out, by="blur", keep=5))
    assert again.trashed == len(list((out / "trash").glob("*.png"))) > 0


def test_resume_refuses_other_crop_settings(clip_one_face, tmp_path: Path) -> None:
    out = tmp_path / "faces"
    run_extract(_cfg(clip_one_face.path, out, every_nth=8))
    with pytest.raises(FaceswapError, match="--no-resume"):
        run_extract(_cfg(clip_one_face.path, out, every_nth=8, size=96))


def test_two_people_are_kept_apart(clip_two_faces, tmp_path: Path) -> None:
    result = run_extract(_cfg(clip_two_faces.path, tmp_path / "both"))
    al = load_alignments(tmp_path / "both")
    assert result.faces >= 0.95 * 2 * clip_two_faces.frame_count
    people: dict[int, set[str]] = {}
    for fr in al.frames:
        truths = clip_two_faces.faces[fr.index]
        for face in fr.faces:
            errs = {t.person: np.abs(face.landmarks - t.landmarks).mean() for t in truths}
            people.setdefault(face.track_id, set()).add(min(errs, key=errs.get))
    assert all(len(p) == 1 for p in people.values())  # no track jumps between people


def test_reference_photo_keeps_only_that_person(clip_two_faces, tmp_path: Path) -> None:
    ref = tmp_path / "grace.png"
    cv2.imwrite(str(ref), cv2.cvtColor(face_photo("grace_hopper"), cv2.COLOR_RGB2BGR))
    out = tmp_path / "grace"
    result = run_extract(_cfg(clip_two_faces.path, out, refs=(ref,), descriptors=True))
    assert result.faces >= 0.95 * clip_two_faces.frame_count
    errors = []
    for fr in load_alignments(out).frames:
        truth = {t.person: t.landmarks for t in clip_two_faces.faces[fr.index]}
        assert len(fr.faces) <= 1
        for face in fr.faces:
            grace = truth["grace_hopper"]
            errors.append(np.abs(face.landmarks - grace).mean() / _eye(grace))
            assert face.descriptor is not None and face.descriptor.shape == (128,)
    _assert_on_face(errors)


def test_not_ref_leaves_that_person_out(clip_two_faces, tmp_path: Path) -> None:
    ref = tmp_path / "grace.png"
    cv2.imwrite(str(ref), cv2.cvtColor(face_photo("grace_hopper"), cv2.COLOR_RGB2BGR))
    out = tmp_path / "others"
    args = ["extract", str(clip_two_faces.path), "-o", str(out), "--detector", "dlib-hog",
            "--size", "64", "--not-ref", str(ref), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    al = load_alignments(out)
    assert al.face_count >= 0.95 * clip_two_faces.frame_count
    assert al.extra["not_refs"] == [str(ref)]
    errors = []
    for fr in al.frames:
        truth = {t.person: t.landmarks for t in clip_two_faces.faces[fr.index]}
        assert len(fr.faces) <= 1
        for face in fr.faces:
            other = truth["astronaut"]
            errors.append(np.abs(face.landmarks - other).mean() / _eye(other))
    _assert_on_face(errors)


def test_frames_without_face_are_reported(clip_with_blank_frames, tmp_path: Path) -> None:
    result = run_extract(_cfg(clip_with_blank_frames.path, tmp_path / "out"))
    blank = set(clip_with_blank_frames.blank_frames)
    al = load_alignments(tmp_path / "out")
    empty = {f.index for f in al.frames if not f.faces}
    assert empty == blank
    assert result.frames_without_face == len(blank)


def test_debug_frames_draw_each_face_for_review(clip_with_blank_frames, tmp_path: Path) -> None:
    from faceswap.faces.align import landmark_region
    from faceswap.io.images import read_image
    from faceswap.io.video import open_source

    (tmp_path / "a_file").write_bytes(b"")
    with pytest.raises(FaceswapError, match="exists and is not a folder"):
        run_extract(
            _cfg(clip_with_blank_frames.path, tmp_path / "o", debug_frames=tmp_path / "a_file")
        )
    assert not (tmp_path / "o").exists()
    debug = tmp_path / "debug"
    result = run_extract(_cfg(clip_with_blank_frames.path, tmp_path / "out", debug_frames=debug))
    drawn = sorted(debug.glob("*.jpg"))
    assert len(drawn) == result.frames == clip_with_blank_frames.frame_count
    al = load_alignments(tmp_path / "out").by_index()
    for frame in open_source(clip_with_blank_frames.path).iter_frames():
        image = read_image(debug / f"{frame.name}.jpg").astype(int)
        faces = al[frame.index].faces
        if not faces:  # a note in the corner, the rest as it was (to within JPEG's error)
            assert np.abs(image[60:] - frame.image[60:]).mean() < 3.0
            assert np.abs(image[:40, :160] - frame.image[:40, :160]).max() > 100
            continue
        landmarks = faces[0].landmarks
        # Landmarks drawn green: chin, nose tip, the eyes' outer corners.
        for x, y in np.rint(landmarks[[8, 30, 36, 45]]).astype(int):
            green = image[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).mean(0)
            assert green[1] > 180 and green[1] - max(green[0], green[2]) > 60, (frame.index, green)
        away = ~landmark_region(image.shape, landmarks[None], 1.2)
        assert np.abs(image[away] - frame.image[away]).mean() < 3.0


def test_image_folder_crops_named_after_images(image_folder_faces, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run_extract(_cfg(image_folder_faces.path, out, max_faces=1))
    assert result.faces == len(image_folder_faces.files)
    al = load_alignments(out)
    assert al.fps is None
    names = {f.faces[0].crop_file for f in al.frames}
    assert names == {f"{p.stem}_0.png" for p in image_folder_faces.files}


def test_zero_faces_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "empty.mp4", frames=6, audio=False, blank_frames=range(6))
    out = tmp_path / "out"
    with pytest.raises(FaceswapError, match="no face found in 6 frames"):
        run_extract(_cfg(clip.path, out))
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("kind", ["missing", "not-a-video", "output-is-a-file"])
def test_bad_input_is_one_clear_error(tmp_path: Path, clip_one_face, kind: str) -> None:
    src, out = clip_one_face.path, tmp_path / "out"
    if kind == "missing":
        src = tmp_path / "nope.mp4"
    elif kind == "not-a-video":
        src = tmp_path / "notes.mp4"
        src.write_text("this is not a video")
    else:
        out = tmp_path / "file"
        out.write_text("x")
    with pytest.raises(FaceswapError) as err:
        run_extract(_cfg(src, out))
    assert "\n" not in str(err.value)
    assert out.is_file() if kind == "output-is-a-file" else not out.exists()  # nothing made


def test_output_folder_of_its_own(tmp_path: Path, image_folder_faces, clip_one_face) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for f in image_folder_faces.files[:1]:
        (photos / f.name).write_bytes(f.read_bytes())
    with pytest.raises(FaceswapError, match=r"is the input folder: the crops would mix"):
        run_extract(_cfg(photos, photos))
    assert sorted(p.name for p in photos.iterdir()) == [image_folder_faces.files[0].name]
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_text("{}")
    with pytest.raises(FaceswapError, match=r"-o .*model holds a face-swap model"):
        run_extract(_cfg(clip_one_face.path, model))
    assert [p.name for p in model.iterdir()] == ["model.json"]
    # extract spells the model files' names itself (no torch at its start-up): they must
    # stay the train modules' own
    from faceswap.train import checkpoint, segment

    assert (checkpoint.MODEL_JSON, segment.CARD) == ("model.json", "segmenter.json")


def test_config_rejects_bad_values(tmp_path: Path) -> None:
    base = _cfg(tmp_path, tmp_path)
    for bad in ({"every_nth": 0}, {"coverage": 1.5}, {"centering": "chin"}, {"smooth": "x"}):
        with pytest.raises(FaceswapError):
            replace(base, **bad)


def test_cli_extracts_and_prints_summary(clip_one_face, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["extract", str(clip_one_face.path), "-o", str(out), "--detector", "dlib-hog",
            "--size", "48", "--every-nth", "6", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "frames/s" in result.output and "without a face" in result.output
    assert load_alignments(out).crop.size == 48


def test_cli_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["extract", str(tmp_path / "nope.mp4"), "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "faceswap: error:" in result.output and "Traceback" not in result.output


def test_folder_of_videos_gets_one_subfolder_each(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    for name, seed in (("take1", 3), ("take2", 4)):
        make_clip(videos / f"{name}.mp4", frames=6, audio=False, seed=seed)
    result = run_extract(_cfg(videos, tmp_path / "out"))
    assert len(result.sources) == 2 and result.frames == 12
    for name in ("take1", "take2"):
        al = load_alignments(tmp_path / "out" / name)
        assert Path(al.source).stem == name and len(al.frames) == 6
    # Re-cropped from the per-video faces folders, each from its own.
    again = run_extract(_cfg(videos, tmp_path / "big", from_faces=tmp_path / "out", size=80))
    assert again.faces == result.faces and not again.failed
    for name in ("take1", "take2"):
        al = load_alignments(tmp_path / "big" / name)
        assert Path(al.source).stem == name and al.crop.size == 80
        assert al.face_count == load_alignments(tmp_path / "out" / name).face_count


def test_a_bad_video_in_a_folder_does_not_stop_the_others(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    make_clip(videos / "take1.mp4", frames=6, audio=False, seed=3)
    (videos / "take2.mp4").write_bytes(b"")  # an empty file: a copy that failed
    make_clip(videos / "take3.mp4", frames=6, audio=False, seed=4)
    out = tmp_path / "out"
    result = run_extract(_cfg(videos, out))
    assert [src.source.name for src in result.sources] == ["take1.mp4", "take3.mp4"]
    assert [(video.name, "empty file" in why) for video, why in result.failed] == [
        ("take2.mp4", True)
    ]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["take1", "take3"]
    args = ["extract", str(videos), "-o", str(tmp_path / "cli"), "--detector", "dlib-hog",
            "--size", "64", "--no-progress"]  # fmt: skip
    cli_run = CliRunner().invoke(cli, args)
    assert cli_run.exit_code == 2 and "Traceback" not in cli_run.output
    assert cli_run.output.rstrip().endswith(
        "faceswap: error: 1 of 3 videos were not extracted (take2.mp4); see the errors above, "
        "fix them and rerun"
    )
    (videos / "take1.mp4").write_bytes(b"")
    (videos / "take3.mp4").write_bytes(b"")
    with pytest.raises(FaceswapError, match="none of its 3 videos could be extracted"):
        run_extract(_cfg(videos, tmp_path / "none"))
    assert not (tmp_path / "none").exists()


def test_interrupted_run_keeps_finished_frames_for_resume(
    clip_one_face, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceswap.faces.finder import FaceFinder

    real_find = FaceFinder.find
    calls = {"n": 0}

    def find_then_ctrl_c(self, image, timestamp=None):
        calls["n"] += 1
        if calls["n"] > 7:
            raise KeyboardInterrupt
        return real_find(self, image, timestamp)

    out = tmp_path / "out"
    monkeypatch.setattr(FaceFinder, "find", find_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_extract(_cfg(clip_one_face.path, out))
    al = load_alignments(out)
    assert [f.index for f in al.frames] == list(range(7))
    for fr in al.frames:  # every crop the file names is complete on disk
        for face in fr.faces:
            assert cv2.imread(str(out / face.crop_file)).shape == (64, 64, 3)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    monkeypatch.setattr(FaceFinder, "find", real_find)
    rest = run_extract(_cfg(clip_one_face.path, out))
    assert rest.resumed == 7 and rest.frames == clip_one_face.frame_count - 7


def test_corrupt_alignments_in_output_is_a_clear_error(clip_one_face, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "alignments.json").write_text('{"schema_version": 1, "frames": [')
    with pytest.raises(FaceswapError, match="corrupt alignments file"):
        run_extract(_cfg(clip_one_face.path, out))
    fresh = run_extract(_cfg(clip_one_face.path, out, every_nth=8, resume=False))
    assert fresh.frames == 6


def test_config_from_yaml_style_dict(tmp_path: Path) -> None:
    from faceswap.config import config_from_dict, config_to_dict

    cfg = config_from_dict(
        ExtractConfig,
        {"input": "a.mp4", "output": str(tmp_path), "refs": ["me.jpg"], "coverage": 1},
    )
    assert cfg.input == Path("a.mp4") and cfg.refs == (Path("me.jpg"),)
    assert cfg.crop.coverage == 1.0
    assert config_from_dict(ExtractConfig, config_to_dict(cfg)) == cfg
    with pytest.raises(FaceswapError, match="unknown key"):
        config_from_dict(ExtractConfig, {"input": "a", "output": "b", "detecter": "fan"})


def test_from_faces_recrops_the_reviewed_faces_without_detecting(
    clip_one_face, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceswap.faces.align import CropSpec, alignment_matrix, warp_to_crop
    from faceswap.sort import SortConfig, run_sort
    from faceswap.train.dataset import load_face_set, write_masks

    old = tmp_path / "faces"
    run_extract(_cfg(clip_one_face.path, old))
    write_masks(old)
    run_sort(SortConfig(faces=old, by="blur", keep=12))  # review: 12 kept, in an order
    painted = sorted((old / "masks").glob("*.png"))[0]
    mask = cv2.imread(str(painted), cv2.IMREAD_GRAYSCALE)
    mask[:, : mask.shape[1] // 2] = 0  # a hand over the left half
    cv2.imwrite(str(painted), mask)

    def no_detector(*args, **kwargs):
        raise AssertionError("re-cropping must not load a detector")

    monkeypatch.setattr("faceswap.extract.detector_for", no_detector)
    new = tmp_path / "faces_head"
    result = run_extract(_cfg(clip_one_face.path, new, from_faces=old, size=96, centering="head"))
    assert result.faces == 12 and result.detector == "none"
    kept = sorted(p.name for p in old.glob("*.png"))
    assert sorted(p.name for p in new.glob("*.png")) == kept  # names and order kept
    before, after = load_alignments(old), load_alignments(new)
    assert after.crop == CropSpec(size=96, centering="head", coverage=0.8)
    assert after.detector == before.detector and after.extra["recropped_from"]
    old_faces = {f.crop_file: f for fr in before.frames for f in fr.faces}
    frames = {i: f.image for i, f in enumerate(_frames(clip_one_face.path))}
    for frame in after.frames:
        for face in frame.faces:
            # The same landmarks, a matrix for the new crop, and the crop cut from the frame.
            np.testing.assert_array_equal(face.landmarks, old_faces[face.crop_file].landmarks)
            expected = alignment_matrix(face.landmarks, after.crop)
            np.testing.assert_allclose(face.matrix, expected, atol=1e-9)
            crop = cv2.cvtColor(cv2.imread(str(new / face.crop_file)), cv2.COLOR_BGR2RGB)
            cut = warp_to_crop(frames[frame.index], expected, 96)
            assert np.abs(crop.astype(int) - cut).max() == 0
    # Only the painted mask follows (hull masks are drawn afresh), warped to the new crop:
    # its painted-out half maps into the left of the new crop too.
    assert [p.name for p in (new / "masks").glob("*.png")] == [painted.name]
    moved = cv2.imread(str(new / "masks" / painted.name), cv2.IMREAD_GRAYSCALE)
    assert moved.shape == (96, 96) and moved[:, :40].max() == 0 and moved[:, 50:].max() == 255
    faces = load_face_set(new, "A")
    assert len(faces) == 12 and faces.user_masks and all(lm is not None for lm in faces.landmarks)


def _frames(path: Path):
    from faceswap.io.video import open_source

    return list(open_source(path).iter_frames())


def test_rotate_finds_turned_faces_and_cuts_them_upright(tmp_path: Path) -> None:
    photos = make_image_folder(tmp_path / "photos", 4, roll=50.0)  # 0, 50, 100, 150 degrees
    upright = run_extract(_cfg(photos.path, tmp_path / "upright"))
    assert upright.faces == 1  # only the upright one
    result = run_extract(_cfg(photos.path, tmp_path / "faces", rotate="45"))
    assert result.faces == 4
    al = load_alignments(tmp_path / "faces")
    assert al.extra["rotate"] == [45.0, -45.0, 90.0, -90.0, 135.0, -135.0, 180.0]
    crops = []
    for fr in al.frames:
        truth = photos.faces[fr.index][0].landmarks
        assert np.abs(fr.faces[0].landmarks - truth).mean() / _eye(truth) < 0.03
        crop = cv2.imread(str(tmp_path / "faces" / fr.faces[0].crop_file), cv2.IMREAD_GRAYSCALE)
        crops.append(crop.astype(np.float32).ravel())
    # Every crop shows the face upright: each looks like the upright photo's crop.
    assert min(np.corrcoef(crops)[0]) > 0.9


def test_rotate_on_the_command_line(tmp_path: Path) -> None:
    photos = make_image_folder(tmp_path / "photos", 2, roll=90.0)
    out = tmp_path / "faces"
    args = ["extract", str(photos.path), "-o", str(out), "--detector", "dlib-hog", "--size",
            "48", "--rotate", "90", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert sum(len(f.faces) for f in load_alignments(out).frames) == 2
    args[args.index("90")] = "ninety"
    bad = CliRunner().invoke(cli, [*args[:3], str(tmp_path / "other"), *args[4:]])
    assert bad.exit_code == 2 and "--rotate 'ninety': give a step in degrees" in bad.output
    assert "Traceback" not in bad.output and not (tmp_path / "other").exists()
    with pytest.raises(FaceswapError, match="--rotate choose faces"):
        _cfg(photos.path, tmp_path / "again", from_faces=out, rotate=90)


def test_redo_empty_detects_again_only_where_no_face_was_found(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "turning.mp4", frames=30, audio=False, roll=6.0)
    out = tmp_path / "faces"
    first = run_extract(_cfg(clip.path, out))
    before = load_alignments(out)
    found_before = {f.index: f for f in before.frames if f.faces}
    empty_before = [f.index for f in before.frames if not f.faces]
    assert len(empty_before) >= 10 and first.sources[0].empty_frames == tuple(empty_before)
    assert first.sources[0].no_face_line().startswith("turning.mp4: no face in frames ")
    kept_crop = next(iter(found_before.values())).faces[0].crop_file
    stamp = (out / kept_crop).stat().st_mtime_ns
    deleted = list(found_before.values())[1].faces[0].crop_file
    (out / deleted).unlink()  # reviewed away: that frame is not "without a face"

    again = run_extract(_cfg(clip.path, out, redo_empty=True, rotate="45"))
    src = again.sources[0]
    assert src.frames == len(empty_before) and src.resumed == len(found_before)
    assert src.frames_without_face == 0 and again.faces == len(empty_before)
    after = load_alignments(out)
    assert [f.index for f in after.frames] == list(range(30))
    for fr in after.frames:
        if fr.index in found_before:  # kept as they were
            (old,) = found_before[fr.index].faces
            assert np.array_equal(fr.faces[0].landmarks, old.landmarks)
            assert fr.faces[0].crop_file == old.crop_file
            continue
        truth = clip.faces[fr.index][0].landmarks
        assert np.abs(fr.faces[0].landmarks - truth).mean() / _eye(truth) < 0.08, fr.index
    assert (out / kept_crop).stat().st_mtime_ns == stamp and not (out / deleted).exists()
    (record,) = after.extra["redone_empty"]
    assert record["detector"] == "dlib-hog" and record["frames"] == len(empty_before)
    assert record["found"] == len(empty_before) and record["rotate"][0] == 45.0

    # Nothing left to redo: nothing is done.
    assert run_extract(_cfg(clip.path, out, redo_empty=True)).frames == 0
    for bad in ({"resume": False}, {"from_faces": out}):
        with pytest.raises(FaceswapError, match="--redo-empty detects again"):
            _cfg(clip.path, tmp_path / "x", redo_empty=True, **bad)


def test_the_command_line_names_the_frames_without_a_face(
    clip_with_blank_frames, tmp_path: Path
) -> None:
    args = ["extract", str(clip_with_blank_frames.path), "-o", str(tmp_path / "f"), "--detector",
            "dlib-hog", "--size", "32", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    blank = sorted(i for i, faces in enumerate(clip_with_blank_frames.faces) if not faces)
    line = next(x for x in result.output.splitlines() if "no face in frames" in x)
    assert str(blank[0]) in line and str(blank[-1]) in line
    redo = CliRunner().invoke(cli, [*args, "--redo-empty"])
    assert redo.exit_code == 0, redo.output
    assert f"({clip_with_blank_frames.frame_count - len(blank)} already done)" in redo.output


def test_frame_ranges_extract_a_scene_and_resume_within_it(clip_one_face, tmp_path: Path) -> None:
    out = tmp_path / "scene"
    first = run_extract(_cfg(clip_one_face.path, out, frame_ranges="5-9,40-"))
    al = load_alignments(out)
    assert [f.index for f in al.frames] == [*range(5, 10), *range(40, 48)]
    assert first.frames == 13 and al.extra["frame_ranges"] == "5-9,40-"
    for fr in al.frames:  # tracking starts afresh at the second range: still on the face
        truth = clip_one_face.faces[fr.index][0].landmarks
        assert np.abs(fr.faces[0].landmarks - truth).mean() / _eye(truth) < 0.08, fr.index
    # A wider range goes on with the frames not done yet.
    more = run_extract(_cfg(clip_one_face.path, out, frame_ranges=[(0, 12)]))
    assert (more.frames, more.resumed) == (8, 13)
    assert [f.index for f in load_alignments(out).frames] == [*range(13), *range(40, 48)]
    with pytest.raises(FaceswapError, match="'9-5' is not a range of frame numbers"):
        _cfg(clip_one_face.path, out, frame_ranges="9-5")


def test_frames_far_apart_are_reached_by_seeking() -> None:
    from types import SimpleNamespace

    from faceswap.extract import SEEK_GAP, _frames_to_do

    class Source:  # decodes from any start, as a video does after a seek
        def __init__(self) -> None:
            self.starts: list[int] = []
            self.decoded = 0

        def iter_frames(self, every_nth: int = 1, start: int = 0):
            self.starts.append(start)
            for index in range(start, 10_000, every_nth):
                self.decoded += 1
                yield SimpleNamespace(index=index)

    source = Source()
    todo = [*range(0, 20, 2), *range(SEEK_GAP + 100, SEEK_GAP + 110, 2), 9000]
    assert [f.index for f in _frames_to_do(source, todo, 2)] == todo
    assert source.starts == [0, SEEK_GAP + 100, 9000]
    assert source.decoded < 30  # only the stretches, each stopped after its last frame


def test_a_folder_of_images_is_found_on_a_process_per_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    photos = make_image_folder(tmp_path / "photos", 18, people=("astronaut", "grace_hopper"),
                               blank_frames=(4,))  # fmt: skip
    monkeypatch.setattr("faceswap.extract.os.cpu_count", lambda: 2)
    caplog.set_level("INFO")
    parallel = run_extract(_cfg(photos.path, tmp_path / "parallel", refeed=2))
    assert "finding faces in 18 images on 2 processes" in caplog.text
    single = run_extract(_cfg(photos.path, tmp_path / "single", refeed=2, workers=1))
    assert parallel.faces == single.faces == 34
    assert parallel.sources[0].empty_names == single.sources[0].empty_names == ("frame_000004",)
    ours, theirs = (load_alignments(tmp_path / name) for name in ("parallel", "single"))
    for a, b in zip(ours.frames, theirs.frames, strict=True):
        assert a.index == b.index and len(a.faces) == len(b.faces)
        for fa, fb in zip(a.faces, b.faces, strict=True):
            assert np.array_equal(fa.landmarks, fb.landmarks) and fa.crop_file == fb.crop_file
            crop_a = (tmp_path / "parallel" / fa.crop_file).read_bytes()
            assert crop_a == (tmp_path / "single" / fb.crop_file).read_bytes()


def test_an_image_sequence_is_tracked_and_smoothed_like_a_video(tmp_path: Path) -> None:
    frames = make_image_folder(tmp_path / "plates", 20)
    run_extract(_cfg(frames.path, tmp_path / "photos"))
    run_extract(_cfg(frames.path, tmp_path / "shot", sequence=True))
    photos, shot = (load_alignments(tmp_path / n) for n in ("photos", "shot"))
    assert all(f.detected for f in photos.frames) and photos.extra["smooth"] == "none"
    assert not all(f.detected for f in shot.frames)  # tracked between detections
    assert shot.extra["smooth"] == "one-euro" and shot.extra["sequence"] is True
    assert len({f.faces[0].track_id for f in shot.frames}) == 1
    errors = []
    for fr in shot.frames:
        truth = frames.faces[fr.index][0].landmarks
        errors.append(np.abs(fr.faces[0].landmarks - truth).mean() / _eye(truth))
    _assert_on_face(errors)


def test_a_long_video_is_found_in_stretches_alike_on_any_number_of_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from faceswap.extract import _stretches

    monkeypatch.setattr("faceswap.extract.STRETCH", 4)
    assert _stretches([*range(0, 11), 13, 14, 15], 1) == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10], [13, 14, 15],
    ]  # fmt: skip
    assert _stretches(list(range(0, 20, 2)), 2) == [[0, 2, 4, 6], [8, 10, 12, 14], [16, 18]]
    clip = make_clip(tmp_path / "long.mp4", frames=60, audio=False, seed=4)
    monkeypatch.setattr("faceswap.extract.STRETCH", 20)
    monkeypatch.setattr("faceswap.extract.WARM", 6)
    monkeypatch.setattr("faceswap.extract.os.cpu_count", lambda: 2)
    caplog.set_level("INFO")
    parallel = run_extract(_cfg(clip.path, tmp_path / "parallel", debug_frames=tmp_path / "dbg"))
    assert "finding faces in 60 frames on 2 processes, 20 frames at a time" in caplog.text
    here = run_extract(_cfg(clip.path, tmp_path / "here", workers=1))
    assert parallel.faces == here.faces >= 57
    ours, theirs = (load_alignments(tmp_path / n) for n in ("parallel", "here"))
    assert [f.index for f in ours.frames] == list(range(60))
    for a, b in zip(ours.frames, theirs.frames, strict=True):
        assert (a.index, a.detected, len(a.faces)) == (b.index, b.detected, len(b.faces))
        for fa, fb in zip(a.faces, b.faces, strict=True):
            assert np.array_equal(fa.landmarks, fb.landmarks)
            crop_a = (tmp_path / "parallel" / fa.crop_file).read_bytes()
            assert crop_a == (tmp_path / "here" / fb.crop_file).read_bytes()
        if a.faces:  # at the stretches' starts too: still on the face
            truth = clip.faces[a.index][0].landmarks
            assert np.abs(a.faces[0].landmarks - truth).mean() / _eye(truth) < 0.1, a.index
    assert len(list((tmp_path / "dbg").glob("*.jpg"))) == 60  # review frames from workers


def _die(*args: object) -> None:
    """A worker process that dies as it starts (as one killed for memory would)."""
    import os

    os._exit(1)


def test_faces_are_still_found_when_the_worker_processes_die(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    photos = make_image_folder(tmp_path / "photos", 16)
    monkeypatch.setattr("faceswap.extract.os.cpu_count", lambda: 2)
    monkeypatch.setattr("faceswap.extract._start_image_worker", _die)
    caplog.set_level("INFO")
    result = run_extract(_cfg(photos.path, tmp_path / "faces"))
    assert "on 2 processes" in caplog.text and "going on in this one" in caplog.text
    assert result.faces == 16
    assert [f.index for f in load_alignments(tmp_path / "faces").frames] == list(range(16))


def test_from_faces_refuses_other_footage_and_detection_options(
    clip_one_face, tmp_path: Path
) -> None:
    old = tmp_path / "faces"
    run_extract(_cfg(clip_one_face.path, old))
    other = make_clip(tmp_path / "other.mp4", frames=5, audio=False, seed=9)
    with pytest.raises(FaceswapError, match=r"but other\.mp4 has 5"):
        run_extract(_cfg(other.path, tmp_path / "x", from_faces=old))
    assert not (tmp_path / "x").exists()
    with pytest.raises(FaceswapError, match="--max-faces, --descriptors choose faces"):
        _cfg(clip_one_face.path, tmp_path / "y", from_faces=old, max_faces=1, descriptors=True)
    with pytest.raises(FaceswapError, match="is the --from-faces folder"):
        run_extract(_cfg(clip_one_face.path, old, from_faces=old, size=96))
    assert len(list(old.glob("*.png"))) > 0
    args = ["extract", str(clip_one_face.path), "-o", str(tmp_path / "z"), "--from-faces",
            str(tmp_path / "missing"), "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--from-faces" in result.output and "no such" in result.output
    assert "Traceback" not in result.output
