"""Preview grids: the columns, the learned-mask columns, uneven sides; --show-samples."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faceswap.train.preview import COLUMNS, COLUMNS_MASKED, SAMPLE_COLUMNS, preview_grid


def test_grid_columns_with_and_without_masks() -> None:
    g = torch.Generator().manual_seed(0)
    a = [torch.rand(3, 3, 8, 8, generator=g) for _ in range(3)]
    b = [torch.rand(2, 3, 8, 8, generator=g) for _ in range(3)]  # fewer B faces: padded
    plain = preview_grid(*a, *b, gap=2)
    assert plain.shape == (3 * 8, len(COLUMNS) * 8 + 2, 3)
    expected_a = a[0].mul(255).round().byte().permute(0, 2, 3, 1).reshape(-1, 8, 3).numpy()
    np.testing.assert_array_equal(plain[:, :8], expected_a)
    assert not plain[2 * 8 :, 3 * 8 + 2 :].any()  # the missing third B row is black
    own_a, swap_a = (torch.rand(3, 1, 8, 8, generator=g) for _ in range(2))
    own_b, swap_b = (torch.rand(2, 1, 8, 8, generator=g) for _ in range(2))
    masked = preview_grid(*a, *b, masks=((own_a, swap_a), (own_b, swap_b)), gap=2)
    assert masked.shape == (3 * 8, len(COLUMNS_MASKED) * 8 + 2, 3)
    for mask, column in ((own_a, COLUMNS_MASKED.index("mask A→A")),
                         (swap_a, COLUMNS_MASKED.index("mask A→B"))):  # fmt: skip
        grey = mask.mul(255).round().byte()[:, 0].reshape(-1, 8).numpy()
        for channel in range(3):
            np.testing.assert_array_equal(masked[:, column * 8 : (column + 1) * 8, channel], grey)
    # The B half starts after the gap: its own mask follows B→B.
    b_own = 5 * 8 + 2 + 2 * 8
    grey_b = own_b.mul(255).round().byte()[:, 0].reshape(-1, 8).numpy()
    np.testing.assert_array_equal(masked[: 2 * 8, b_own : b_own + 8, 0], grey_b)


def _columns(grid: np.ndarray, size: int) -> list[np.ndarray]:
    """The six columns of a samples grid (the gap after the third skipped)."""
    starts = [0, size, 2 * size, 3 * size + 2, 4 * size + 2, 5 * size + 2]
    return [grid[:, x : x + size] for x in starts]


def test_show_samples_is_the_first_steps_input_and_trains_nothing(
    face_dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceswap.train.loop import Trainer, run_train

    from .test_loop import _cfg

    options = dict(show_samples=True, preview_faces=3, eye_weight=3.0, mouth_weight=2.0)
    model = tmp_path / "m"
    result = run_train(_cfg(face_dirs, model, **options))
    assert result.samples == model / "samples.png" and result.checkpoint is None
    assert sorted(p.name for p in model.iterdir()) == ["samples.png"]  # nothing trained
    grid = cv2.cvtColor(cv2.imread(str(model / "samples.png")), cv2.COLOR_BGR2RGB)
    size = 32  # the tiny test model's resolution
    assert grid.shape == (3 * size, len(SAMPLE_COLUMNS) * size + 2, 3)

    # The inputs and targets are the ones the first training step of the same run gets.
    seen: list[torch.Tensor] = []
    step = Trainer.step

    def recording(self: Trainer, iteration: int, batch_a: dict, batch_b: dict) -> dict:
        a, b, src = self.model_inputs(iteration, batch_a, batch_b)
        seen.extend([src, a["target"], b["target"]])
        return step(self, iteration, batch_a, batch_b)

    monkeypatch.setattr(Trainer, "step", recording)
    run_train(_cfg(face_dirs, tmp_path / "run", iterations=1, save_every=1, **{
        k: v for k, v in options.items() if k != "show_samples"}))  # fmt: skip
    src, target_a, target_b = seen[:3]
    n = target_a.shape[0]

    def image(t: torch.Tensor) -> np.ndarray:
        return t[:3].clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).reshape(-1, size, 3)

    in_a, tg_a, weight_a, in_b, tg_b, _ = _columns(grid, size)
    np.testing.assert_array_equal(in_a, image(src[:n]).numpy())
    np.testing.assert_array_equal(in_b, image(src[n:]).numpy())
    np.testing.assert_array_equal(tg_a, image(target_a).numpy())
    np.testing.assert_array_equal(tg_b, image(target_b).numpy())
    assert not np.array_equal(in_a, tg_a)  # augmented and warped
    # Weights over the largest (the eyes' 3): background 0.1, face 1, mouth 2, eyes 3.
    levels = set(np.unique(weight_a[..., 0]).tolist())
    assert {round(255 * 0.1 / 3), 85, 170, 255} <= levels and max(levels) == 255


def test_show_samples_without_augmentation_shows_inputs_equal_to_targets(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap.train.augment import AugmentConfig
    from faceswap.train.loop import run_train

    from .test_loop import _cfg

    still = AugmentConfig(warp=False, flip=False, colour=False, blur=False, rotation=0.0,
                          zoom=0.0, shift=0.0)  # fmt: skip
    result = run_train(_cfg(face_dirs, tmp_path / "m", show_samples=True, augment=still))
    assert result.samples is not None
    grid = cv2.imread(str(result.samples))
    in_a, tg_a, _, in_b, tg_b, _ = _columns(grid, 32)
    np.testing.assert_array_equal(in_a, tg_a)
    np.testing.assert_array_equal(in_b, tg_b)
    # The folder holds no model: a run starts there as in a new one.
    assert run_train(_cfg(face_dirs, tmp_path / "m", iterations=1, save_every=1)).iteration == 1


def test_previews_are_drawn_without_autograd() -> None:
    from faceswap.nets import build_model
    from faceswap.train.loop import render_preview

    from .conftest import tiny_model_config

    model = build_model(tiny_model_config())
    grad_modes: list[bool] = []
    encode = model.encode

    def recording(x: torch.Tensor) -> torch.Tensor:
        grad_modes.append(torch.is_grad_enabled())
        return encode(x)

    model.encode = recording  # type: ignore[method-assign]
    faces = torch.rand(2, 3, 32, 32)
    render_preview(model, faces, faces)
    assert grad_modes == [False, False]  # no graph kept alive by a preview
