"""Swapper: batched inference shapes, directions, learned masks; landmark smoothing wiring."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from faceswap.convert.pipeline import ConvertConfig, _Locator
from faceswap.convert.swapper import Swapper
from faceswap.errors import FaceswapError
from faceswap.faces.align import MEAN_FACE, CropSpec, alignment_matrix
from faceswap.faces.alignments import Alignments, FaceRecord, FrameRecord, save_alignments
from faceswap.nets import build_model, load_preset, scaled


def _model(learned_mask: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(scaled(load_preset("tiny"), 1 / 4, resolution=32, learned_mask=learned_mask))


def test_swap_shapes_and_range() -> None:
    swapper = Swapper(_model(), torch.device("cpu"))
    crops = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    faces, masks, _ = swapper(crops)
    assert faces.shape == (5, 32, 32, 3) and faces.dtype == np.float32
    assert faces.min() >= 0 and faces.max() <= 1 and masks is None
    with pytest.raises(ValueError, match="crops"):
        swapper(crops[:, :16])


def test_directions_use_different_decoders_and_masks_come_back() -> None:
    model = _model(learned_mask=True)
    crops = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    a2b, mask, _ = Swapper(model, torch.device("cpu"), "a2b")(crops)
    b2a, _, _ = Swapper(model, torch.device("cpu"), "b2a")(crops)
    assert not np.allclose(a2b, b2a)
    assert mask is not None and mask.shape == (2, 32, 32)
    with pytest.raises(FaceswapError, match="a2b"):
        Swapper(model, torch.device("cpu"), "sideways")


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_dst_masks_come_from_the_faces_own_decoder(direction: str) -> None:
    model = _model(learned_mask=True)
    crops = np.random.default_rng(4).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    out = Swapper(model, torch.device("cpu"), direction, dst_mask=True)(crops)
    plain = Swapper(model, torch.device("cpu"), direction)(crops)
    assert plain.dst_masks is None and out.dst_masks is not None
    np.testing.assert_allclose(out.faces, plain.faces, atol=1e-6)  # the swap is unchanged
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        own = model.decode(model.encode(x), direction[0]).mask[:, 0].numpy()
    np.testing.assert_allclose(out.dst_masks, own, atol=1e-5)
    assert not np.allclose(out.dst_masks, out.masks, atol=1e-3)
    with pytest.raises(FaceswapError, match="learned mask"):
        Swapper(_model(), torch.device("cpu"), dst_mask=True)


def test_batched_equals_one_by_one() -> None:
    swapper = Swapper(_model(), torch.device("cpu"))
    crops = np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    together, _, _ = swapper(crops)
    alone = np.concatenate([swapper(crops[i : i + 1])[0] for i in range(4)])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def _jittery_alignments(path: Path, n: int = 30) -> Path:
    rng = np.random.default_rng(3)
    crop = CropSpec(64)
    frames = []
    for i in range(n):
        lm = ((MEAN_FACE - 0.5) * 100 + (160 + i, 120)).astype(np.float32)
        lm = lm + rng.normal(0, 2.0, lm.shape).astype(np.float32)  # detector jitter
        face = FaceRecord(
            box=np.array([100, 60, 220, 180], np.float32), score=1.0, landmarks=lm,
            matrix=alignment_matrix(lm, crop), track_id=0,
        )  # fmt: skip
        frames.append(FrameRecord(index=i, timestamp=i / 25, faces=(face,)))
    al = Alignments("clip.mp4", n, Fraction(25), 320, 240, crop, "test", frames)
    save_alignments(path, al)
    return path


def _jitter(path: Path, smooth: str) -> float:
    source = SimpleNamespace(is_video=True, fps=Fraction(25), frame_count=30, width=320, height=240)
    cfg = ConvertConfig(
        input=Path("clip.mp4"), model_dir=Path("m"), output=Path("o.mp4"),
        alignments=path, smooth=smooth,
    )  # fmt: skip
    locator = _Locator(cfg, source, CropSpec(32))
    tracks = []
    for i in range(30):
        (lm,) = locator.landmarks(SimpleNamespace(index=i, timestamp=i / 25, image=None))
        tracks.append(lm)
    # Frame-to-frame change beyond the steady 1 px/frame drift.
    steps = np.diff(np.stack(tracks), axis=0) - np.array([1.0, 0.0])
    return float(np.abs(steps[5:]).mean())


def test_smoothing_reduces_jitter_from_alignments(tmp_path: Path) -> None:
    path = _jittery_alignments(tmp_path / "al.json")
    raw, auto = _jitter(path, "none"), _jitter(path, "auto")
    assert auto == raw  # auto trusts the alignments file: extract smoothed it already
    assert _jitter(path, "one-euro") < 0.75 * raw
    assert _jitter(path, "ema") < 0.75 * raw


def test_config_from_yaml_dict() -> None:
    from faceswap.config import config_from_dict, config_to_dict

    cfg = config_from_dict(
        ConvertConfig,
        {"input": "a.mp4", "model_dir": "m", "output": "o.mp4", "refs": ["r.jpg"], "blur": 4},
    )
    assert cfg.input == Path("a.mp4") and cfg.refs == (Path("r.jpg"),) and cfg.blur == 4.0
    assert config_from_dict(ConvertConfig, config_to_dict(cfg)) == cfg
    with pytest.raises(FaceswapError, match="valid keys"):
        config_from_dict(ConvertConfig, {"input": "a", "model_dir": "m", "output": "o", "fps": 3})


def test_cpu_amp_runs_bf16_channels_last_close_to_float32(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from faceswap import device

    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    crops = np.random.default_rng(4).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    exact, exact_mask, _ = Swapper(_model(learned_mask=True), torch.device("cpu"))(crops)
    swapper = Swapper(_model(learned_mask=True), torch.device("cpu"), amp=True)
    assert swapper.amp_dtype == torch.bfloat16
    conv = next(m for m in swapper.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    faces, mask, _ = swapper(crops)
    assert faces.dtype == np.float32 and faces.shape == exact.shape
    assert mask is not None and exact_mask is not None
    assert not np.array_equal(faces, exact)  # really ran in bf16...
    np.testing.assert_allclose(faces, exact, atol=0.03)  # ...within bf16's precision
    np.testing.assert_allclose(mask, exact_mask, atol=0.03)


@pytest.mark.parametrize(("library", "channels_last"), [("blas", True), ("onednn", False)])
def test_float32_layout_follows_the_cpu_inference_gemm_library_with_the_same_faces(
    monkeypatch: pytest.MonkeyPatch, library: str, channels_last: bool
) -> None:
    from faceswap.convert import swapper as swapper_module
    from faceswap.nets import blocks

    crops = np.random.default_rng(5).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    monkeypatch.setattr(blocks, "SMALL_MAP_WEIGHT_GRAD", False)  # stock layers, NCHW
    reference, _, _ = Swapper(_model(), torch.device("cpu"))(crops)
    monkeypatch.setattr(blocks, "SMALL_MAP_WEIGHT_GRAD", True)
    monkeypatch.setattr(swapper_module, "cpu_inference_gemm_library", lambda: library)
    monkeypatch.setattr(blocks, "cpu_inference_gemm_library", lambda: library)
    swapper = Swapper(_model(), torch.device("cpu"))
    assert swapper.amp_dtype is None
    conv = next(m for m in swapper.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) is channels_last
    faces, _, _ = swapper(crops)
    np.testing.assert_allclose(faces, reference, atol=1e-5)


def _liae() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(scaled(load_preset("liae"), 1 / 32, resolution=32, learned_mask=True))


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_morph_goes_from_the_face_itself_to_the_whole_swap(direction: str) -> None:
    crops = np.random.default_rng(5).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    cpu = torch.device("cpu")
    whole = Swapper(_liae(), cpu, direction)(crops).faces
    # 1: the swap exactly; 0: the face drawn as itself (its own side's decoding)
    assert np.array_equal(Swapper(_liae(), cpu, direction, morph=1.0)(crops).faces, whole)
    model = _liae().eval()
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        own = model.decode(model.encode(x), direction[0]).rgb.permute(0, 2, 3, 1).numpy()
        half = model.morph(model.encode(x), direction[-1], 0.5).rgb.permute(0, 2, 3, 1).numpy()
    none = Swapper(_liae(), cpu, direction, morph=0.0)(crops).faces
    np.testing.assert_allclose(none, own, atol=1e-6)
    halfway = Swapper(_liae(), cpu, direction, morph=0.5)(crops).faces
    np.testing.assert_allclose(halfway, half, atol=1e-6)
    assert not np.allclose(halfway, whole) and not np.allclose(halfway, none)


def test_morph_needs_a_liae_model_and_an_amount_in_range() -> None:
    with pytest.raises(FaceswapError, match="use a liae preset"):
        Swapper(_model(), torch.device("cpu"), morph=0.5)
    with pytest.raises(FaceswapError, match=r"--morph must be in \[0, 1\]"):
        Swapper(_liae(), torch.device("cpu"), morph=1.5)
    with pytest.raises(FaceswapError, match=r"--morph must be in \[0, 1\]"):
        ConvertConfig(input=Path("in.mp4"), model_dir=Path("m"), output=Path("o.mp4"), morph=-0.1)
