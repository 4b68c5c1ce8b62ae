"""faceswap sort: each order puts the faces it is for where it says, renames keep every face's
landmarks and mask, --keep trashes the rest, and an interrupted sort is finished."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from faceswap.cli import cli
from faceswap.errors import FaceswapError
from faceswap.faces.align import MEAN_FACE, CropSpec, alignment_matrix, warp_to_crop
from faceswap.faces.alignments import (
    Alignments,
    FaceRecord,
    FrameRecord,
    load_alignments,
    save_alignments,
)
from faceswap.sort import (
    JOURNAL,
    SORT_METHODS,
    TRASH_DIR,
    FaceInfo,
    SortConfig,
    outside_share,
    pitch_proxy,
    run_sort,
)
from faceswap.train.dataset import is_painted, load_face_set, write_masks
from tests.train.conftest import _landmarks, _photo, write_face_folder

BLURRED = ("frame_000002_0.png", "frame_000005_0.png")


def _blur(folder: Path, names: tuple[str, ...] = BLURRED) -> None:
    for name in names:
        image = cv2.imread(str(folder / name))
        cv2.imwrite(str(folder / name), cv2.GaussianBlur(image, (0, 0), 2.5))


@pytest.fixture(scope="module")
def people() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {
        name: (photo, _landmarks(photo))
        for name in ("astronaut", "grace")
        for photo in [_photo(name)]
    }


def _folder(tmp_path: Path, people: dict, n: int = 8) -> Path:
    photo, landmarks = people["astronaut"]
    folder = write_face_folder(tmp_path / "faces", photo, landmarks, seed=1, n=n)
    _blur(folder)
    return folder


def _by_content(folder: Path) -> dict[str, tuple[str, bytes]]:
    """Each crop's sha256 -> (its landmarks in crop pixels as bytes, its mask's sha256)."""
    faces = load_face_set(folder, "A")
    out = {}
    for i, path in enumerate(faces.files):
        mask = faces.user_mask(i)
        digest = hashlib.sha256(mask.read_bytes()).hexdigest() if mask else ""
        landmarks = faces.landmarks[i]
        assert landmarks is not None
        out[hashlib.sha256(path.read_bytes()).hexdigest()] = (digest, landmarks.tobytes())
    return out


def test_blur_puts_blurred_faces_last_and_keeps_landmarks_and_masks(tmp_path, people):
    folder = _folder(tmp_path, people)
    write_masks(folder)
    before = _by_content(folder)
    result = run_sort(SortConfig(faces=folder, by="blur"))
    names = [p.name for p in sorted(folder.glob("*.png"))]
    assert {n.split("_", 1)[1] for n in names[-2:]} == set(BLURRED)
    assert names == [name for name, _ in result.order]
    scores = [score for _, score in result.order]
    assert scores == sorted(scores, reverse=True)
    assert result.renamed == 8 and result.trashed == 0
    # The same crops, each with its own landmarks and mask, under the new names.
    assert _by_content(folder) == before
    masks = sorted(p.name for p in (folder / "masks").glob("*.png"))
    assert masks == names
    assert not any(is_painted(folder / "masks" / m) for m in masks)  # the record followed


def test_original_restores_extract_names_and_alignments(tmp_path, people):
    folder = _folder(tmp_path, people)
    first = (folder / "alignments.json").read_bytes()
    names = sorted(p.name for p in folder.glob("*.png"))
    run_sort(SortConfig(faces=folder, by="blur"))
    run_sort(SortConfig(faces=folder, by="size"))  # a second sort keeps the first names
    assert sorted(p.name for p in folder.glob("*.png")) != names
    run_sort(SortConfig(faces=folder, by="original"))
    assert sorted(p.name for p in folder.glob("*.png")) == names
    assert (folder / "alignments.json").read_bytes() == first


def test_face_puts_other_people_last(tmp_path, people):
    folder = _folder(tmp_path, people, n=6)
    photo, landmarks = people["grace"]
    other = write_face_folder(tmp_path / "other", photo, landmarks, seed=3, n=2)
    al = load_alignments(folder / "alignments.json")
    extra = load_alignments(other / "alignments.json")
    for k, frame in enumerate(extra.frames):
        face = frame.faces[0]
        name = f"frame_{100 + k:06d}_0.png"
        os.replace(other / face.crop_file, folder / name)
        moved = FaceRecord(face.box, face.score, face.landmarks, face.matrix, crop_file=name)
        al.frames.append(FrameRecord(100 + k, 4.0 + k, (moved,)))
    save_alignments(folder / "alignments.json", al)
    result = run_sort(SortConfig(faces=folder, by="face"))
    last = {name.split("_", 1)[1] for name, _ in result.order[-2:]}
    assert last == {"frame_000100_0.png", "frame_000101_0.png"}


def test_face_descriptors_on_processes_equal_those_on_threads(tmp_path, people, monkeypatch):
    from faceswap import sort

    folder = _folder(tmp_path, people, n=8)
    method = SORT_METHODS.get("face")
    faces = sort._load_part(folder).faces
    on_threads = method.order(faces)
    monkeypatch.setattr(sort, "PROCESSES_FROM", 4)
    on_processes = method.order(faces)
    np.testing.assert_array_equal(on_processes[0], on_threads[0])
    np.testing.assert_allclose(on_processes[1], on_threads[1], atol=1e-6)


def _info(tmp_path: Path, name: str, landmarks: np.ndarray, matrix=None, size=(640, 360)):
    return FaceInfo(
        name,
        tmp_path / name,
        landmarks.astype(np.float32),
        np.eye(2, 3) if matrix is None else matrix,
        size,
        None,
    )


def test_pose_size_and_edge_measures_order_faces():
    face = MEAN_FACE * 48 + 8
    down, up = face.copy(), face.copy()
    down[30, 1] += 6  # the nose tip lower between eyes and chin: looking down
    up[30, 1] -= 6
    assert pitch_proxy(up) < pitch_proxy(face) < pitch_proxy(down)
    turned = face.copy()
    turned[27:36, 0] += 6
    tmp = Path(".")
    faces = [_info(tmp, "a", face), _info(tmp, "b", turned), _info(tmp, "c", face * 0 + face)]
    order, scores = SORT_METHODS.get("yaw").order(faces)
    assert order[-1] == 1 and scores[-1] > scores[0]
    # size: the crop's scale says how large the face was in the frame
    big = _info(tmp, "big", face, matrix=np.array([[0.5, 0, 0], [0, 0.5, 0]]))
    small = _info(tmp, "small", face, matrix=np.array([[2.0, 0, 0], [0, 2.0, 0]]))
    order, scores = SORT_METHODS.get("size").order([small, big])
    assert list(order) == [1, 0] and scores[0] == pytest.approx(4 * scores[1])
    # black: a crop that reaches past the frame's left edge by half
    inside = _info(tmp, "in", face, matrix=np.array([[1.0, 0, -100], [0, 1.0, -100]]))
    half = _info(tmp, "half", face, matrix=np.array([[1.0, 0, 32], [0, 1.0, -100]]))
    assert outside_share(inside, 64) == 0.0
    assert outside_share(half, 64) == pytest.approx(0.5)


def _pose_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """12 synthetic faces: 8 frontal, 2 turned left, 2 turned right; one of each pair sharp."""
    rng = np.random.default_rng(0)
    spec = CropSpec(size=64)
    folder = tmp_path / "poses"
    folder.mkdir()
    frames, pose_of = [], {}
    poses = ["front"] * 8 + ["left", "left", "right", "right"]
    for i, pose in enumerate(poses):
        small = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        frame = cv2.resize(small, (256, 256), interpolation=cv2.INTER_CUBIC)
        if i % 2:
            frame = cv2.GaussianBlur(frame, (0, 0), 3)
        pts = (MEAN_FACE * 120 + 60).astype(np.float32)
        if pose != "front":
            pts[27:36, 0] += 14 if pose == "right" else -14
        matrix = alignment_matrix(pts, spec)
        name = f"frame_{i:06d}_0.png"
        cv2.imwrite(str(folder / name), warp_to_crop(frame, matrix, 64))
        pose_of[name] = pose
        box = np.concatenate([pts.min(0), pts.max(0)])
        frames.append(FrameRecord(i, i / 25, (FaceRecord(box, 1.0, pts, matrix, name),)))
    al = Alignments("poses.mp4", 12, Fraction(25), 256, 256, spec, "synthetic", frames)
    save_alignments(folder / "alignments.json", al)
    return folder, pose_of


def test_best_keep_covers_every_pose_and_trashes_the_rest(tmp_path):
    folder, pose_of = _pose_folder(tmp_path)
    result = run_sort(SortConfig(faces=folder, by="best", keep=3))
    kept = sorted(p.name for p in folder.glob("*.png"))
    assert len(kept) == 3 and result.trashed == 9
    assert {pose_of[n.split("_", 1)[1]] for n in kept} == {"front", "left", "right"}
    assert all(int(n.split("_")[-2]) % 2 == 0 for n in kept)  # the sharp one of each pose
    assert len(list((folder / TRASH_DIR).glob("*.png"))) == 9
    # Training sees the kept faces only, with their landmarks.
    faces = load_face_set(folder, "B")
    assert len(faces) == 3 and all(lm is not None for lm in faces.landmarks)
    # Convert leaves the trashed faces unswapped, as deleted crops.
    from faceswap.convert.pipeline import _without_deleted_crops

    frames = _without_deleted_crops(load_alignments(folder / "alignments.json"), folder)
    assert sum(len(f.faces) for f in frames.values()) == 3


def test_interrupted_sort_is_refused_then_finished(tmp_path, people, monkeypatch):
    folder = _folder(tmp_path, people)
    write_masks(folder)
    before = _by_content(folder)
    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(src, dst):
        if Path(src).name.startswith(".sorting-"):  # the second phase: temp -> new name
            calls["n"] += 1
            if calls["n"] == 6:  # some crops and masks have their new names, some not
                raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr("faceswap.sort.os.replace", failing_replace)
    with pytest.raises(KeyboardInterrupt):
        run_sort(SortConfig(faces=folder, by="blur"))
    monkeypatch.setattr("faceswap.sort.os.replace", real_replace)
    assert calls["n"] == 6 and (folder / JOURNAL).exists()
    with pytest.raises(FaceswapError, match="interrupted `faceswap sort`"):
        load_face_set(folder, "A")
    result = run_sort(SortConfig(faces=folder, by="blur"))
    assert result.finished_interrupted
    assert not (folder / JOURNAL).exists()
    assert not list(folder.glob(".sorting-*"))
    assert _by_content(folder) == before
    assert sorted(p.name for p in folder.glob("*.png"))[-1].startswith("00008_")


def test_dry_run_changes_nothing_and_unlisted_crops_stay(tmp_path, people):
    folder = _folder(tmp_path, people)
    stray = folder / "stray.png"
    cv2.imwrite(str(stray), np.zeros((64, 64, 3), np.uint8))
    listing = sorted(p.name for p in folder.iterdir())
    result = CliRunner().invoke(cli, ["sort", str(folder), "--by", "blur", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would rename 8 of 8 faces" in result.output and "1 crops not in" in result.output
    assert "00008_frame_000002_0.png" in result.output or "00008_frame_000005_0.png" in (
        result.output
    )
    assert sorted(p.name for p in folder.iterdir()) == listing
    run_sort(SortConfig(faces=folder, by="blur"))
    assert stray.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "nope"], "unknown sort method 'nope'; choose from best, black, blur"),
        (["--keep", "0"], "--keep 0: keep at least 1 face"),
        (["--by", "original", "--keep", "3"], "drop --keep"),
    ],
)
def test_bad_options_are_one_line(tmp_path, people, args, message):
    folder = _folder(tmp_path, people, n=6)
    result = CliRunner().invoke(cli, ["sort", str(folder), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_bad_folders_are_one_line(tmp_path, people):
    runner = CliRunner()
    result = runner.invoke(cli, ["sort", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no such folder" in result.output
    result = runner.invoke(cli, ["sort", str(tmp_path)])
    assert result.exit_code == 2 and "no alignments.json" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "alignments.json").write_text(json.dumps({}))
    result = runner.invoke(cli, ["sort", str(empty)])
    assert result.exit_code == 2 and "no face crops" in result.output


def test_a_pipeline_sort_stage_runs_once(tmp_path, people):
    from faceswap.pipeline import RunConfig, run_pipeline

    folder = _folder(tmp_path, people, n=6)
    spec = tmp_path / "p.yaml"
    spec.write_text("stages: {tidy: {sort: {input: faces, by: blur, keep: 4}}}\n")

    def actions() -> list[str]:
        return [f"{s.action}: {s.reason}" for s in run_pipeline(RunConfig(spec=spec)).stages]

    assert actions() == ["ran: never ran"]
    assert len(list(folder.glob("*.png"))) == 4
    assert actions() == ["skipped: unchanged"]  # its own renames are not a change


def test_keep_twice_keeps_the_trashed_masks_record(tmp_path, people):
    folder = _folder(tmp_path, people)
    write_masks(folder)
    run_sort(SortConfig(faces=folder, by="blur", keep=6))
    run_sort(SortConfig(faces=folder, by="yaw", keep=4))
    trashed = sorted((folder / TRASH_DIR).glob("*.png"))
    masks = sorted((folder / TRASH_DIR / "masks").glob("*.png"))
    assert len(trashed) == len(masks) == 4
    assert [m.name for m in masks] == [t.name for t in trashed]
    assert not any(is_painted(m) for m in masks)
    assert len(list((folder / "masks").glob("*.png"))) == 4


def test_a_folder_of_per_video_faces_folders_is_sorted_as_one_set(tmp_path, people):
    # `faceswap extract takes/ -o faces` writes a faces folder per video.
    root = tmp_path / "faces_b"
    astronaut, grace = people["astronaut"], people["grace"]
    write_face_folder(root / "take1", *astronaut, seed=1, n=6)
    write_face_folder(root / "take2", *grace, seed=2, n=6)
    _blur(root / "take1", ("frame_000001_0.png", "frame_000003_0.png"))
    _blur(root / "take2", ("frame_000000_0.png",))
    result = run_sort(SortConfig(faces=root, by="blur", keep=9))
    assert len(result.order) == 12 and result.trashed == 3
    # One order over both takes: the three blurred crops are its tail, wherever they are.
    tail = {n.split("/")[0] + "/" + n.split("_", 1)[1] for n, _ in result.order[-3:]}
    assert tail == {"take1/frame_000001_0.png", "take1/frame_000003_0.png",
                    "take2/frame_000000_0.png"}  # fmt: skip
    kept = sorted(p.name for take in ("take1", "take2") for p in (root / take).glob("*.png"))
    assert len(kept) == 9 and kept == sorted(n.split("/")[1] for n, _ in result.order[:9])
    # Each take keeps its own faces and landmarks; training reads both as one set of 9.
    assert len(load_face_set(root, "B")) == 9
    run_sort(SortConfig(faces=root, by="original"))
    assert sorted(p.name for p in (root / "take2").glob("*.png"))[0] == "frame_000001_0.png"


def test_a_rename_that_fails_is_one_line_and_finished_later(tmp_path, people, monkeypatch):
    folder = _folder(tmp_path, people)
    real_replace = os.replace

    def refusing(src, dst):
        if Path(src).name.startswith(".sorting-"):
            raise PermissionError(13, "Permission denied")
        real_replace(src, dst)

    monkeypatch.setattr("faceswap.sort.os.replace", refusing)
    result = CliRunner().invoke(cli, ["sort", str(folder), "--no-progress"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "cannot rename its faces (Permission denied)" in result.output
    assert f"run `faceswap sort {folder}` again to finish" in result.output
    monkeypatch.setattr("faceswap.sort.os.replace", real_replace)
    with pytest.raises(FaceswapError, match="interrupted `faceswap sort`"):
        load_face_set(folder, "B")  # every crop under a temporary name: still this message
    assert run_sort(SortConfig(faces=folder)).finished_interrupted
    assert len(list(folder.glob("0000*_frame_*.png"))) == 8


def test_face_uses_the_descriptors_extract_stored(tmp_path, people, monkeypatch):
    folder = _folder(tmp_path, people, n=6)
    al = load_alignments(folder / "alignments.json")
    rng = np.random.default_rng(0)
    main = rng.normal(size=128).astype(np.float32) * 0.05
    frames = []
    for k, frame in enumerate(al.frames):
        near = main + rng.normal(size=128).astype(np.float32) * 0.01
        # frames 1 and 4 show "someone else": descriptors far from the others
        stored = near + (0.2 if k in (1, 4) else 0.0)
        frames.append(
            FrameRecord(frame.index, frame.timestamp, (replace(frame.faces[0], descriptor=stored),))
        )
    save_alignments(folder / "alignments.json", replace(al, frames=frames))

    def no_dlib(*args, **kwargs):
        raise AssertionError("stored descriptors must not be computed again")

    monkeypatch.setattr("faceswap.faces.identity.face_descriptors", no_dlib)
    result = run_sort(SortConfig(faces=folder, by="face"))
    last = {name.split("_", 1)[1] for name, _ in result.order[-2:]}
    assert last == {"frame_000001_0.png", "frame_000004_0.png"}
