"""Mask training (XSeg-like): it learns painted masks, resumes, refuses wrong folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from faceswap.cli import cli
from faceswap.errors import FaceswapError
from faceswap.nets.segmenter import SegmenterConfig
from faceswap.train.dataset import MASKS_DIR, face_masks, load_face_set, read_face
from faceswap.train.segment import (
    MaskPredictor,
    SegmenterTrainConfig,
    read_segmenter_card,
    run_train_segmenter,
)

from .test_dataset import _occluded_mask


def _painted(face_dirs: tuple[Path, Path], tmp_path: Path, painted: int = 10) -> Path:
    """A's faces with masks painted around a 'hand' over the left eye on ``painted`` faces."""
    folder = tmp_path / "faces"
    shutil.copytree(face_dirs[0], folder)
    (folder / MASKS_DIR).mkdir()
    faces = load_face_set(folder, "A")
    for file, landmarks in list(zip(faces.files, faces.landmarks, strict=True))[:painted]:
        mask = np.minimum(face_masks(landmarks, 64, 64)[0], _occluded_mask(64))
        cv2.imwrite(str(folder / MASKS_DIR / file.name), mask)
    return folder


def _cfg(faces: Path, model: Path, **kw: object) -> SegmenterTrainConfig:
    base: dict[str, object] = dict(
        faces=faces, model_dir=model, network=SegmenterConfig(32, (8, 16, 32)),
        iterations=150, batch_size=8, lr=3e-3, save_every=50, progress=False,
    )  # fmt: skip
    return SegmenterTrainConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.mark.slow
def test_it_learns_the_painted_masks_and_draws_them_for_other_faces(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = _painted(face_dirs, tmp_path, painted=6)  # 4 faces left unpainted
    model = tmp_path / "seg"
    result = run_train_segmenter(_cfg(folder, model, iterations=250))
    assert (result.iteration, result.faces) == (250, 6)
    card = read_segmenter_card(model)
    assert card["iteration"] == 250 and card["painted"] == 6
    faces = load_face_set(folder, "A")
    crops = np.stack([read_face(f, 64) for f in faces.files])
    masks = MaskPredictor(model)(crops)
    assert masks.shape == (10, 64, 64)
    hull = face_masks(faces.landmarks[0], 64, 64)[0] > 127
    hand = hull & (_occluded_mask(64) == 0)
    for drawn in (masks[:6], masks[6:]):  # painted faces, and faces it never saw a mask of
        assert drawn[:, hand].mean() < 0.4 < 0.7 < drawn[:, hull & ~hand].mean()
        assert drawn[:, ~hull].mean() < 0.2
    # `faceswap masks --model` fills in the unpainted faces and keeps the painted ones.
    painted_before = (folder / MASKS_DIR / faces.files[0].name).read_bytes()
    run = CliRunner().invoke(cli, ["masks", str(folder), "--model", str(model)])
    assert run.exit_code == 0, run.output
    assert "wrote 4 masks drawn by seg" in run.output and "kept 6" in run.output
    assert (folder / MASKS_DIR / faces.files[0].name).read_bytes() == painted_before
    filled = cv2.imread(str(folder / MASKS_DIR / faces.files[8].name), cv2.IMREAD_UNCHANGED)
    assert filled.shape == (64, 64) and filled[hand].mean() < 0.4 * 255


def test_resume_continues_and_wrong_folders_are_refused(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = _painted(face_dirs, tmp_path, painted=3)
    model = tmp_path / "seg"
    first = run_train_segmenter(_cfg(folder, model, iterations=4, save_every=2))
    assert first.iteration == 4
    again = run_train_segmenter(_cfg(folder, model, iterations=6, resume=True))
    assert (again.start_iteration, again.iteration) == (4, 6)
    assert read_segmenter_card(model)["iteration"] == 6
    with pytest.raises(FaceswapError, match="holds a mask model already; add --resume"):
        run_train_segmenter(_cfg(folder, model))
    with pytest.raises(FaceswapError, match="no mask model to resume"):
        run_train_segmenter(_cfg(folder, tmp_path / "new", resume=True))
    with pytest.raises(FaceswapError, match="no painted masks to learn from"):
        run_train_segmenter(_cfg(face_dirs[1], tmp_path / "other"))
    swap_model = tmp_path / "swap"
    swap_model.mkdir()
    (swap_model / "model.json").write_text("{}")
    with pytest.raises(FaceswapError, match="holds a face-swap model"):
        run_train_segmenter(_cfg(folder, swap_model))
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(FaceswapError, match=r"is a faces folder \(it holds an alignments"):
        run_train_segmenter(_cfg(folder, folder))  # -m the faces folder itself
    assert sorted(p.name for p in folder.iterdir()) == before
    # From the command line: one line and exit 2 for a folder without masks.
    run = CliRunner().invoke(cli, ["train-masks", str(face_dirs[1]), "-m", str(tmp_path / "x")])
    assert run.exit_code == 2 and "no painted masks to learn from" in run.output
    assert "Traceback" not in run.output


def test_painted_masks_are_told_from_the_ones_faceswap_wrote(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap.train.dataset import generated_masks, is_painted, write_masks
    from faceswap.train.segment import mask_examples

    folder = tmp_path / "faces"
    shutil.copytree(face_dirs[0], folder)
    assert write_masks(folder) == (10, 0)  # hulls to paint over
    masks = sorted((folder / MASKS_DIR).glob("*.png"))
    assert not any(is_painted(m) for m in masks)
    for mask in masks[:3]:  # paint three of them
        image = cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)
        image[10:30, 5:30] = 0
        cv2.imwrite(str(mask), image)
    assert [is_painted(m) for m in masks] == [True] * 3 + [False] * 7
    examples = mask_examples((folder,))
    assert examples.painted == 3 and len(examples.faces) == 10
    assert examples.weights is not None
    assert examples.weights[:3].sum() == pytest.approx(0.5)  # half of every batch painted
    model = tmp_path / "seg"
    run_train_segmenter(_cfg(folder, model, iterations=2))
    # The model's masks replace the untouched hulls, never the painted ones.
    painted = [m.read_bytes() for m in masks[:3]]
    assert write_masks(folder, model_dir=model) == (7, 3)
    assert [m.read_bytes() for m in masks[:3]] == painted
    assert {e["by"] for e in generated_masks(folder / MASKS_DIR).values()} == {"hull", "model seg"}
    # A model's masks are no examples for the next one; the painted ones still are.
    again = mask_examples((folder,))
    assert again.painted == 3 and len(again.faces) == 3 and again.weights is None
    assert write_masks(folder) == (0, 10)  # hulls only where a mask is missing
    # The sheet to check them: painted ones framed green, what is not face tinted red.
    from faceswap.io.images import read_image
    from faceswap.train.dataset import mask_sheet

    assert mask_sheet(folder, tmp_path / "sheet.png", size=32) == 10
    sheet = read_image(tmp_path / "sheet.png")
    assert sheet.shape == (2 * 32, 8 * 32, 3)
    assert tuple(sheet[0, 5]) == (0, 255, 0) and tuple(sheet[0, 3 * 32 + 5]) != (0, 255, 0)
    with pytest.raises(FaceswapError, match="no masks to show"):
        mask_sheet(face_dirs[1], tmp_path / "other.png")
