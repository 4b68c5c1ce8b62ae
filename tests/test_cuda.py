"""CUDA: mixed-precision training steps, checkpoint and resume, fp16 inference.

These need an NVIDIA GPU and are skipped without one (CI has none); `benchmarks/gpu/run.sh`
runs them on a GPU machine. They use synthetic face folders, so dlib's models are not needed.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from faceswap.train import ddp
from faceswap.train.loop import TrainConfig, Trainer, run_train
from tests.train.conftest import tiny_model_config
from tests.train.synthetic_faces import write_synthetic_faces
from tests.train.test_loop import _cfg as cpu_cfg
from tests.train.test_loop import check_adam_across_layouts, step_batches

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def synthetic_dirs(tmp_path: Path) -> tuple[Path, Path]:
    return (
        write_synthetic_faces(tmp_path / "a", 8, 64),
        write_synthetic_faces(tmp_path / "b", 8, 64),
    )


def _cfg(dirs: tuple[Path, Path], model_dir: Path, **overrides: object) -> TrainConfig:
    """The CPU tests' settings (tests/train/test_loop.py), on CUDA with AMP."""
    return cpu_cfg(dirs, model_dir, **{"device": "cuda", "amp": True, "iterations": 4, **overrides})


@pytest.mark.parametrize(
    ("amp_dtype", "dtype"), [("bf16", torch.bfloat16), ("fp16", torch.float16)]
)
@pytest.mark.parametrize(
    ("gan", "extra"),
    [
        ("off", {}),
        ("wgan-gp", {}),
        ("off", {"true_face_power": 0.5}),
        ("off", {"face_style_power": 0.1, "bg_style_power": 1.0}),
    ],
    ids=["plain", "wgan-gp", "true-face", "style"],
)
def test_amp_steps_train_on_cuda(
    synthetic_dirs: tuple[Path, Path],
    tmp_path: Path,
    amp_dtype: str,
    dtype: torch.dtype,
    gan: str,
    extra: dict[str, float],
) -> None:
    # the true-face critic steps through the same fp16 loss scaler as the model; the style
    # terms' statistics stay float32 under autocast
    cfg = _cfg(synthetic_dirs, tmp_path / "m", amp_dtype=amp_dtype, gan=gan, **extra)
    trainer = Trainer(cfg, tiny_model_config(), torch.device("cuda"), ddp.DistInfo())
    assert trainer.amp_dtype == dtype
    assert trainer.scaler.is_enabled() == (dtype == torch.float16)
    batches = step_batches(synthetic_dirs, cfg)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    for iteration in range(6):  # fp16's scaler may skip its first steps (inf gradients)
        parts = trainer.step(iteration, *batches)
        assert all(torch.isfinite(v).all() for v in parts.values()), parts
    changed = [
        not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True)
    ]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert any(changed)  # the optimiser stepped


@pytest.mark.parametrize("amp_dtype", ["bf16", "fp16"])
def test_clip_grad_with_amp_on_cuda(
    synthetic_dirs: tuple[Path, Path], tmp_path: Path, amp_dtype: str
) -> None:
    # fp16: the scaler's unscale_ comes first, so the clipped gradients are the true ones.
    cfg = _cfg(synthetic_dirs, tmp_path / "m", amp_dtype=amp_dtype, clip_grad=0.5)
    trainer = Trainer(cfg, tiny_model_config(), torch.device("cuda"), ddp.DistInfo())
    batches = step_batches(synthetic_dirs, cfg)
    norms = [float(trainer.step(i, *batches)["grad_norm"]) for i in range(6)]
    assert math.isfinite(norms[-1]), norms
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    total = float(torch.linalg.vector_norm(torch.stack([g.float().norm() for g in grads])))
    assert total == pytest.approx(min(norms[-1], 0.5), rel=1e-2)


@pytest.mark.parametrize("amp_dtype", ["bf16", "fp16"])
def test_autoclip_with_amp_on_cuda(
    synthetic_dirs: tuple[Path, Path], tmp_path: Path, amp_dtype: str
) -> None:
    # fp16's first steps overflow (the scaler skips them): their norms stay out of the history.
    cfg = _cfg(synthetic_dirs, tmp_path / "m", amp_dtype=amp_dtype, autoclip=True)
    trainer = Trainer(cfg, tiny_model_config(), torch.device("cuda"), ddp.DistInfo())
    batches = step_batches(synthetic_dirs, cfg)
    clips = [float(trainer.step(i, *batches)["clip"]) for i in range(8)]
    # NaN only while every norm so far overflowed; then a percentile of the finite ones.
    assert math.isfinite(clips[-1]) and clips[-1] > 0, clips
    assert trainer.autoclip is not None and trainer.autoclip.count == 8


@pytest.mark.parametrize("amp_dtype", ["bf16", "fp16"])
def test_checkpoint_and_resume_on_cuda(
    synthetic_dirs: tuple[Path, Path], tmp_path: Path, amp_dtype: str
) -> None:
    from faceswap.train import checkpoint as ckpt

    cfg = _cfg(synthetic_dirs, tmp_path / "m", iterations=2, amp_dtype=amp_dtype)
    first = run_train(cfg)
    assert first.iteration == 2
    state = ckpt.load_checkpoint_state(first.checkpoint)
    resumed = run_train(dataclasses.replace(cfg, iterations=4, resume=True))
    assert (resumed.start_iteration, resumed.iteration) == (2, 4)
    assert all(np.isfinite(v) for v in resumed.losses.values())
    if amp_dtype == "fp16":  # the gradient scaler's state travels with the checkpoint
        assert state["scaler"]["scale"] > 0


def test_lr_finder_then_landmark_warped_training_on_cuda(
    synthetic_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    # The range test's copy and the model share the GPU; pinned batches from spawned
    # workers carry the landmark-warped inputs.
    from faceswap.train.augment import AugmentConfig

    cfg = _cfg(synthetic_dirs, tmp_path / "m", lr_finder="set", lr_finder_steps=30,
               workers=1, augment=AugmentConfig(warp_to_landmarks=True))  # fmt: skip
    result = run_train(cfg)
    assert result.iteration == 4 and result.lr_found is not None
    assert 1e-8 < result.lr_found < 1e-1 and math.isfinite(result.losses["loss"])


def test_show_samples_then_a_run_with_loss_plot_on_cuda(
    synthetic_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    # The samples come off the GPU (warp there); the run's previews and loss.png follow.
    import cv2

    shown = run_train(_cfg(synthetic_dirs, tmp_path / "s", show_samples=True, preview_faces=2))
    assert shown.samples is not None and cv2.imread(str(shown.samples)).shape[0] == 2 * 32
    result = run_train(_cfg(synthetic_dirs, tmp_path / "m", preview_every=2, save_minutes=1e-9))
    assert result.iteration == 4 and (tmp_path / "m" / "loss.png").is_file()


def test_lr_dropout_masks_on_cuda() -> None:
    """The mask's bytes come from 64-bit random words; CUDA's must hold 63 random bits too."""
    from faceswap.train.loop import keep_mask

    mask = keep_mask(1_000_003, 0.3, torch.Generator(device="cuda").manual_seed(0))
    assert mask.device.type == "cuda" and mask.shape == (1_000_003,)
    by_byte = mask[: 1_000_003 // 7 * 7].view(-1, 7).float().mean(0)
    assert torch.allclose(by_byte, torch.full_like(by_byte, 77 / 256), atol=0.005), by_byte


def test_fp16_inference_matches_float32() -> None:
    from faceswap.convert.swapper import Swapper
    from faceswap.nets import build_model

    torch.manual_seed(0)
    model = build_model(tiny_model_config(learned_mask=True))
    crops = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    exact, _, _ = Swapper(model, torch.device("cuda"))(crops)
    swapper = Swapper(model, torch.device("cuda"), amp=True)
    assert swapper.amp_dtype == torch.float16
    faces, masks, _ = swapper(crops)
    assert faces.dtype == np.float32 and masks is not None
    np.testing.assert_allclose(faces, exact, atol=0.01)


def test_dst_masks_and_16_bit_crops_on_cuda() -> None:
    """learned-dst's second decoder pass and uint16 crops (deep frames) on the GPU match
    the CPU."""
    from faceswap.convert.swapper import Swapper
    from faceswap.nets import build_model

    torch.manual_seed(0)
    model = build_model(tiny_model_config(learned_mask=True))
    crops = np.random.default_rng(1).integers(0, 65536, (4, 32, 32, 3), dtype=np.uint16)
    cpu = Swapper(model, torch.device("cpu"), dst_mask=True)(crops)
    gpu = Swapper(model, torch.device("cuda"), dst_mask=True)(crops)
    assert gpu.dst_masks is not None and cpu.dst_masks is not None
    np.testing.assert_allclose(gpu.faces, cpu.faces, atol=2e-3)
    np.testing.assert_allclose(gpu.dst_masks, cpu.dst_masks, atol=2e-3)


def test_mask_model_trains_and_predicts_on_cuda(
    synthetic_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    import cv2

    from faceswap.nets.segmenter import SegmenterConfig
    from faceswap.train.dataset import write_masks
    from faceswap.train.segment import MaskPredictor, SegmenterTrainConfig, run_train_segmenter

    write_masks(synthetic_dirs[0])  # hull masks, then one painted over
    first = sorted((synthetic_dirs[0] / "masks").glob("*.png"))[0]
    painted = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
    painted[:8] = 0
    cv2.imwrite(str(first), painted)
    cfg = SegmenterTrainConfig(faces=synthetic_dirs[0], model_dir=tmp_path / "seg",
                               network=SegmenterConfig(32, (8, 16)), iterations=20,
                               device="cuda", progress=False)  # fmt: skip
    assert run_train_segmenter(cfg).iteration == 20
    crops = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    masks = MaskPredictor(tmp_path / "seg", "cuda")(crops)
    assert masks.shape == (3, 64, 64) and np.isfinite(masks).all()


def test_fused_adam_resumes_across_layouts_on_cuda() -> None:
    """Training defaults to channels-last on CUDA: a checkpoint of an NCHW run (or a CPU
    one) must resume there, and the reverse, with the fused CUDA kernel."""
    check_adam_across_layouts(torch.device("cuda"))


def test_out_of_gpu_memory_is_one_clear_line(
    synthetic_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from faceswap.errors import FaceswapError

    free, _ = torch.cuda.mem_get_info()
    hog = torch.empty(max(free - (32 << 20), 0), dtype=torch.uint8, device="cuda")
    try:
        with pytest.raises(FaceswapError, match=r"^out of GPU memory on cuda.* --batch-size 2"):
            run_train(_cfg(synthetic_dirs, tmp_path / "m", batch_size=4))
    finally:
        del hog
        torch.cuda.empty_cache()
    # The folder the failed run left starts over.
    assert run_train(_cfg(synthetic_dirs, tmp_path / "m", batch_size=4)).iteration == 4
