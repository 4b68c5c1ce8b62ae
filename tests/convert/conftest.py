"""Fixtures for convert: tiny untrained model folders and short clips with true alignments."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from faceswap.faces.align import CropSpec, alignment_matrix
from faceswap.faces.alignments import Alignments, FaceRecord, FrameRecord, save_alignments
from tests.media import ClipInfo, make_clip

MODEL_CROP = CropSpec(size=64, coverage=0.8, centering="face")


def make_model_dir(folder: Path, *, resolution: int = 32, learned_mask: bool = False) -> Path:
    """A tiny untrained model folder as `faceswap train` writes it (seeded)."""
    from faceswap.nets import build_model, load_preset, scaled
    from faceswap.train.checkpoint import save_model

    torch.manual_seed(0)
    cfg = scaled(load_preset("tiny"), 1 / 4, resolution=resolution, learned_mask=learned_mask)
    model = build_model(cfg)
    save_model(folder, model, crop=MODEL_CROP, card={"preset": "tiny"})
    return folder


def truth_alignments(clip: ClipInfo, path: Path, *, frame_count: int | None = None) -> Path:
    """An alignments file built from the clip's ground-truth landmarks (no detector run)."""
    frames = []
    for i, faces in enumerate(clip.faces):
        records = tuple(
            FaceRecord(
                box=np.asarray(f.box, np.float32),
                score=1.0,
                landmarks=np.asarray(f.landmarks, np.float32),
                matrix=alignment_matrix(f.landmarks, MODEL_CROP),
                track_id=k,
            )
            for k, f in enumerate(faces)
        )
        frames.append(FrameRecord(index=i, timestamp=float(i / clip.fps), faces=records))
    al = Alignments(
        source=str(clip.path),
        frame_count=clip.frame_count if frame_count is None else frame_count,
        fps=clip.fps,
        width=clip.width,
        height=clip.height,
        crop=MODEL_CROP,
        detector="ground-truth",
        frames=frames,
    )
    save_alignments(path, al)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def segmenter_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained mask model folder as `faceswap train-masks` writes it (seeded)."""
    from faceswap.nets.segmenter import Segmenter, SegmenterConfig
    from faceswap.train.segment import save_segmenter

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("segmenter")
    save_segmenter(folder, Segmenter(SegmenterConfig(32, (4, 8))), None, {"iteration": 0})
    return folder


@pytest.fixture(scope="module")
def masked_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("model_mask"), learned_mask=True)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> ClipInfo:
    """16 frames at 30000/1001 fps, faceless frames 0, 1 and 9, audio starting 0.2 s late."""
    return make_clip(
        tmp_path_factory.mktemp("clip") / "short.mp4",
        frames=16,
        fps=Fraction(30000, 1001),
        audio=True,
        audio_offset=0.2,
        blank_frames=(0, 1, 9),
        seed=5,
    )


@pytest.fixture(scope="module")
def short_alignments(short_clip: ClipInfo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return truth_alignments(short_clip, tmp_path_factory.mktemp("al") / "alignments.json")
