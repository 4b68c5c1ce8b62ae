"""Every preset, shrunk: forward shapes and ranges, backward reaches every parameter."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from faceswap.errors import FaceswapError
from faceswap.nets import (
    PRESETS,
    DecoderOutput,
    ModelConfig,
    build_model,
    config_fingerprint,
    load_preset,
    scaled,
)


def small(name: str, **overrides: object) -> ModelConfig:
    """The preset's architecture with 4-8 channels at 32 px (16 px per latent side at most)."""
    cfg = load_preset(name)
    return scaled(cfg, width=1 / 128, resolution=32, **overrides)


@pytest.fixture(params=PRESETS.names())
def preset(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("learned_mask", [False, True])
def test_forward_shapes_and_range(preset: str, learned_mask: bool) -> None:
    torch.manual_seed(0)
    cfg = small(preset, learned_mask=learned_mask)
    model = build_model(cfg)
    x_a, x_b = torch.rand(2, 3, 32, 32), torch.rand(3, 3, 32, 32)
    out_a, out_b = model(x_a, x_b)
    for out, n in ((out_a, 2), (out_b, 3)):
        assert isinstance(out, DecoderOutput)
        assert out.rgb.shape == (n, 3, 32, 32)
        assert torch.isfinite(out.rgb).all()
        assert out.rgb.min() >= 0 and out.rgb.max() <= 1
        if learned_mask:
            assert out.mask is not None and out.mask.shape == (n, 1, 32, 32)
            assert torch.isfinite(out.mask).all()
            assert out.mask.min() >= 0 and out.mask.max() <= 1
        else:
            assert out.mask is None


def test_backward_reaches_every_parameter(preset: str) -> None:
    torch.manual_seed(0)
    model = build_model(small(preset, learned_mask=True))
    out_a, out_b = model(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    loss = sum(o.rgb.mean() + o.mask.mean() for o in (out_a, out_b))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_batched_forward_equals_separate_encode_decode(preset: str) -> None:
    torch.manual_seed(1)
    model = build_model(small(preset)).eval()
    x_a, x_b = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out_a, out_b = model(x_a, x_b)
        sep_a = model.decode(model.encode(x_a), "a")
        sep_b = model.decode(model.encode(x_b), "b")
    torch.testing.assert_close(out_a.rgb, sep_a.rgb, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out_b.rgb, sep_b.rgb, atol=1e-5, rtol=1e-4)


def test_forward_with_swap_adds_a_drawn_as_b(preset: str) -> None:
    torch.manual_seed(1)
    model = build_model(small(preset, learned_mask=True)).eval()
    x_a, x_b = torch.rand(2, 3, 32, 32), torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        plain = model(x_a, x_b)
        out_a, out_b, a_as_b, held = model(x_a, x_b, swap=True, swap_held=True)
        reference = model.swap(x_a, "a2b")
    assert len(plain) == 2
    torch.testing.assert_close(out_a.rgb, plain[0].rgb)
    torch.testing.assert_close(out_b.rgb, plain[1].rgb)
    for swapped in (a_as_b, held):
        torch.testing.assert_close(swapped.rgb, reference.rgb, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(swapped.mask, reference.mask, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(a_as_b.rgb, out_a.rgb)


@pytest.mark.parametrize("arch", ["df", "liae"])
def test_a_held_code_sends_gradients_to_the_decoder_alone(arch: str) -> None:
    model = build_model(small("original" if arch == "df" else "liae"))
    *_, held = model(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32), swap_held=True)
    held.rgb.mean().backward()
    reached = {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None}
    assert reached == ({"decoder_b"} if arch == "df" else {"decoder"})


def test_swap_uses_the_other_decoder() -> None:
    torch.manual_seed(2)
    model = build_model(small("original")).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        a2b = model.swap(x, "a2b").rgb
        b2a = model.swap(x, "b2a").rgb
        as_b = model.decode(model.encode(x), "b").rgb
    torch.testing.assert_close(a2b, as_b)
    assert not torch.allclose(a2b, b2a)
    with pytest.raises(FaceswapError, match="a2b"):
        model.swap(x, "sideways")  # type: ignore[arg-type]


def test_liae_sides_share_the_decoder_and_differ_by_inter_b() -> None:
    torch.manual_seed(3)
    model = build_model(small("liae")).eval()
    assert {n.split(".")[0] for n, _ in model.named_parameters()} == {
        "encoder",
        "inter_ab",
        "inter_b",
        "decoder",
    }
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        z = model.encode(x)
        a = model.decode(z, "a").rgb
        b = model.decode(z, "b").rgb
        # Making inter_B equal to inter_AB makes side B draw exactly what side A draws.
        model.inter_b.load_state_dict(model.inter_ab.state_dict())
        b_same = model.decode(z, "b").rgb
    assert not torch.allclose(a, b)
    torch.testing.assert_close(a, b_same)


def test_wrong_input_size_and_side_are_clear_errors() -> None:
    model = build_model(small("tiny"))
    with pytest.raises(FaceswapError, match="32 px"):
        model.encode(torch.rand(1, 3, 64, 64))
    with pytest.raises(FaceswapError, match="choose from a, b"):
        model.decode(model.encode(torch.rand(1, 3, 32, 32)), "c")  # type: ignore[arg-type]


def test_state_dict_keys_are_stable_and_fingerprint_tracks_shapes() -> None:
    cfg = small("original")
    torch.manual_seed(0)
    first = build_model(cfg).state_dict()
    second = build_model(dataclasses.replace(cfg, name="renamed", description="x")).state_dict()
    assert list(first) == list(second)
    assert all(first[k].shape == second[k].shape for k in first)
    assert all(k.split(".")[0] in {"encoder", "decoder_a", "decoder_b"} for k in first)
    assert config_fingerprint(cfg) == config_fingerprint(dataclasses.replace(cfg, name="x"))
    wider = dataclasses.replace(cfg, bottleneck=cfg.bottleneck * 2)
    assert config_fingerprint(wider) != config_fingerprint(cfg)
    with pytest.raises(RuntimeError, match="size mismatch"):
        build_model(wider).load_state_dict(first)


def test_seeded_build_is_deterministic() -> None:
    cfg = small("tiny")
    torch.manual_seed(5)
    a = build_model(cfg).state_dict()
    torch.manual_seed(5)
    b = build_model(cfg).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_icnr_upscale_starts_as_nearest_neighbour() -> None:
    from faceswap.nets.blocks import UpscaleBlock

    torch.manual_seed(0)
    block = UpscaleBlock(4, 4, 3, negative_slope=0.1, icnr=True)
    y = block(torch.rand(1, 4, 8, 8))
    # Every 2x2 output block is one value: the four sub-pixels had the same kernel.
    torch.testing.assert_close(y[..., 0::2, 0::2], y[..., 1::2, 1::2])
    torch.testing.assert_close(y[..., 0::2, 0::2], y[..., 0::2, 1::2])


@pytest.mark.parametrize("arch", ["df", "liae"])
def test_subpixel_output_draws_at_half_resolution(arch: str) -> None:
    torch.manual_seed(0)
    base = small("original", arch=arch, learned_mask=True)
    cfg = dataclasses.replace(base, subpixel_output=True)
    assert cfg.latent_size * 2 == base.latent_size  # the latent grid halves too
    model = build_model(cfg)
    decoder = model.decoder if arch == "liae" else model.decoder_a
    seen: list[tuple[int, ...]] = []
    decoder.blocks.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    out = model.decode(model.encode(torch.rand(2, 3, 32, 32)), "a")
    assert seen[0][-2:] == (16, 16)  # the decoder's maps stop at half the output size
    assert out.rgb.shape == (2, 3, 32, 32) and out.mask is not None
    assert out.mask.shape == (2, 1, 32, 32)
    # ICNR: at step 0 the four sub-pixels of each output pixel block are equal, so RGB and
    # mask channels come out of the shuffle each from its own group of four
    for y in (out.rgb, out.mask):
        torch.testing.assert_close(y[..., 0::2, 0::2], y[..., 1::2, 1::2])
        torch.testing.assert_close(y[..., 0::2, 0::2], y[..., 0::2, 1::2])
    assert config_fingerprint(cfg) != config_fingerprint(base)  # another checkpoint shape
    dataclasses.replace(base, resolution=48)  # 4 halvings, 4 doublings: fine
    with pytest.raises(FaceswapError, match="must be divisible by 32"):
        dataclasses.replace(cfg, resolution=48)  # a fifth doubling with the sub-pixels


@pytest.mark.parametrize("arch", ["df", "liae"])
def test_encoder_pixel_norm_makes_the_code_scale_free(arch: str) -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    for norm in (True, False):
        cfg = small("original", arch=arch, encoder_pixel_norm=norm)
        model = build_model(cfg).eval()
        convs = model.encoder.convs if arch == "df" else model.encoder
        seen: list[torch.Tensor] = []
        # what the bottleneck reads: unit root-mean-square per face with the norm
        dense = model.encoder.dense if arch == "df" else model.inter_ab
        dense.register_forward_pre_hook(lambda m, args, seen=seen: seen.append(args[0].detach()))
        with torch.no_grad():
            before = model.swap(x).rgb
            rms = seen[-1].square().mean(dim=(1, 2, 3)).sqrt()
            last = convs[-1][0]  # LeakyReLU is positively homogeneous: features scale by 3
            last.weight.mul_(3)
            last.bias.mul_(3)
            after = model.swap(x).rgb
        if norm:
            torch.testing.assert_close(rms, torch.ones(2), rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
        else:
            assert not torch.allclose(after, before, atol=1e-3)
    plain = small("original", arch=arch)
    normed = dataclasses.replace(plain, encoder_pixel_norm=True)
    assert config_fingerprint(plain) != config_fingerprint(normed)  # other weights' meaning


def test_subpixel_output_learns() -> None:
    torch.manual_seed(0)
    cfg = scaled(load_preset("original"), 1 / 32, resolution=32, subpixel_output=True)
    model = build_model(cfg)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    # smooth images, as faces are (uniform noise is no image to learn)
    target = torch.nn.functional.interpolate(torch.rand(4, 3, 4, 4), size=32, mode="bilinear")
    losses = []
    for _ in range(40):
        out_a, _ = model(target, target)
        loss = (out_a.rgb - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 * losses[0]


def test_channels_last_gives_the_same_output() -> None:
    torch.manual_seed(4)
    model = build_model(small("original")).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x, x)[0].rgb
        model_cl = model.to(memory_format=torch.channels_last)
        out = model_cl(x.contiguous(memory_format=torch.channels_last), x)[0].rgb
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def _conv_pair(
    c_in: int, c_out: int, kernel: int, stride: int, layout: torch.memory_format
) -> tuple[torch.nn.Conv2d, torch.nn.Conv2d]:
    """``blocks.Conv2d`` in ``layout`` and the stock conv with the same weights (NCHW)."""
    from faceswap.nets import blocks

    conv = blocks.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
    ref = torch.nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
    ref.load_state_dict(conv.state_dict())
    return conv.to(memory_format=layout), ref


@pytest.mark.parametrize(
    ("library", "channels_last"),
    [("onednn", False), ("blas", False), ("blas", True)],
)
@pytest.mark.parametrize(
    ("batch", "c_in", "c_out", "size", "kernel", "stride"),
    [
        (3, 8, 64, 4, 3, 1),
        (3, 4, 64, 2, 3, 1),
        # Strided: forward and input gradient by GEMM too, each way of laying it out.
        (3, 6, 128, 8, 5, 2),  # neither M = 48 nor C*k*k = 150 a multiple of 64
        (4, 6, 128, 8, 5, 2),  # M = 64
        (3, 64, 64, 8, 3, 2),  # C*k*k = 576
        (2, 5, 24, 4, 3, 1),  # O not a multiple of 64: the BLAS route only
    ],
)
def test_small_map_conv_equals_the_stock_conv(
    monkeypatch: pytest.MonkeyPatch,
    library: str,
    channels_last: bool,
    batch: int,
    c_in: int,
    c_out: int,
    size: int,
    kernel: int,
    stride: int,
) -> None:
    from faceswap.nets import blocks

    monkeypatch.setattr(blocks, "cpu_gemm_library", lambda: library)
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    conv, ref = _conv_pair(c_in, c_out, kernel, stride, layout)
    x = torch.rand(batch, c_in, size, size).contiguous(memory_format=layout).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    g = torch.rand(batch, c_out, size // stride, size // stride)
    y = conv(x)
    expected = {"blas": "_GemmConvFnBackward", "onednn": "_SmallMapConvFnBackward"}[library]
    if library == "onednn" and c_out % 64:
        expected = "ConvolutionBackward0"  # the oneDNN route needs O in 64s
    assert type(y.grad_fn).__name__ == expected  # the custom path runs
    assert y.is_contiguous(memory_format=layout)  # the input's layout, as oneDNN gives
    y_ref = ref(x_ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    y.backward(g)
    y_ref.backward(g)
    assert conv.weight.grad is not None and x.grad is not None
    # Gradients in the layout of what they belong to: the optimizer then needs no copy.
    assert conv.weight.grad.is_contiguous(memory_format=layout)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(conv.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-5)


def _close_to(value: torch.Tensor, ref: torch.Tensor, share: float) -> None:
    """Within ``share`` of the reference's largest magnitude (bf16 keeps ~3 digits)."""
    error = (value.float() - ref.float()).abs().max().item()
    assert error <= share * ref.abs().max().item(), (error, ref.abs().max().item())


@pytest.mark.parametrize("channels_last", [True, False])  # the trainer's layout is True
@pytest.mark.parametrize(
    ("c_in", "c_out", "size", "kernel", "stride"),
    [(128, 1024, 4, 3, 1), (64, 1024, 8, 5, 2)],  # 4x4 outputs, weights over 1M values
)
def test_small_map_conv_under_cpu_bf16_matches_float32(
    channels_last: bool, c_in: int, c_out: int, size: int, kernel: int, stride: int
) -> None:

    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    conv, ref = _conv_pair(c_in, c_out, kernel, stride, layout)
    x = torch.rand(4, c_in, size, size).contiguous(memory_format=layout).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    g = torch.rand(4, c_out, size // stride, size // stride)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
    assert type(y.grad_fn).__name__ == "_GemmConvFnBackward"  # the custom path runs
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last)
    y_ref = ref(x_ref)  # float32
    _close_to(y, y_ref, 0.02)
    y.backward(g)
    y_ref.backward(g)
    assert x.grad is not None and x.grad.dtype == torch.float32
    assert conv.weight.grad is not None and conv.weight.grad.dtype == torch.float32
    _close_to(x.grad, x_ref.grad, 0.02)
    assert conv.weight.grad.is_contiguous(memory_format=layout)
    _close_to(conv.weight.grad, ref.weight.grad, 0.02)
    _close_to(conv.bias.grad, ref.bias.grad, 0.02)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(
    ("library", "c_in", "expect_gemm"),
    [("blas", 128, True), ("onednn", 128, False), ("blas", 16, False)],  # 1.2M / 147K weights
)
def test_small_map_conv_in_float32_inference_equals_the_stock_conv(
    monkeypatch: pytest.MonkeyPatch, library: str, c_in: int, expect_gemm: bool, channels_last: bool
) -> None:
    from faceswap.nets import blocks

    monkeypatch.setattr(blocks, "cpu_inference_gemm_library", lambda: library)
    monkeypatch.setattr(blocks, "cpu_gemm_library", lambda: "onednn")  # training's own
    calls: list[int] = []
    real_gemm_conv = blocks._gemm_conv
    monkeypatch.setattr(
        blocks, "_gemm_conv", lambda *a, **k: calls.append(1) or real_gemm_conv(*a, **k)
    )
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    conv, ref = _conv_pair(c_in, 1024, 3, 1, layout)
    x = torch.rand(4, c_in, 4, 4).contiguous(memory_format=layout)
    with torch.inference_mode():
        y = conv(x)
        torch.testing.assert_close(y, ref(x), rtol=1e-4, atol=1e-5)
    assert bool(calls) is expect_gemm
    assert y.is_contiguous(memory_format=layout)  # the input's layout, as oneDNN gives


def test_small_map_conv_of_a_bf16_model_matches_float32_and_sees_new_weights() -> None:
    from faceswap.nets import blocks

    torch.manual_seed(0)
    conv = blocks.Conv2d(128, 1024, 3, padding=1)  # 1.2M weights, 4x4 map
    ref = torch.nn.Conv2d(128, 1024, 3, padding=1)
    ref.load_state_dict(conv.state_dict())
    conv.to(torch.bfloat16, memory_format=torch.channels_last)  # as Swapper does for --amp
    x = torch.rand(4, 128, 4, 4)
    with torch.inference_mode():
        first = conv(x.to(torch.bfloat16))
        again = conv(x.to(torch.bfloat16))
        # The GEMM route answers channels-last even for NCHW input; oneDNN would not.
        assert first.is_contiguous(memory_format=torch.channels_last)
        assert not first.is_contiguous()
        _close_to(first, ref(x), 0.02)
        assert torch.equal(first, again)
    with torch.no_grad():
        conv.weight.mul_(2)  # as an optimiser or load_state_dict changes it in place
        ref.weight.mul_(2)
    with torch.inference_mode():
        _close_to(conv(x.to(torch.bfloat16)), ref(x), 0.02)


@pytest.mark.parametrize(
    ("in_features", "out_features", "bias"), [(96, 128, True), (64, 64, False)]
)
@pytest.mark.parametrize("library", ["blas", "onednn"])
def test_dense_layer_equals_the_stock_linear(
    monkeypatch: pytest.MonkeyPatch, library: str, in_features: int, out_features: int, bias: bool
) -> None:
    from faceswap.nets import blocks

    monkeypatch.setattr(blocks, "cpu_gemm_library", lambda: library)

    torch.manual_seed(0)
    dense = blocks.Linear(in_features, out_features, bias=bias)
    ref = torch.nn.Linear(in_features, out_features, bias=bias)
    ref.load_state_dict(dense.state_dict())
    x = torch.rand(5, in_features, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y, y_ref = dense(x), ref(x_ref)
    assert type(y.grad_fn).__name__ == "_LinearFnBackward"  # the custom path runs
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    g = torch.rand_like(y)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(dense.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-5)
    if bias:
        torch.testing.assert_close(dense.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("library", ["blas", "onednn"])
@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize(
    ("c_out", "kernel", "height", "width", "bias"),
    [(3, 5, 12, 12, True), (4, 3, 7, 10, False), (3, 5, 3, 4, True), (1, 1, 5, 5, True)],
)
def test_output_conv_equals_the_stock_conv(
    monkeypatch: pytest.MonkeyPatch,
    library: str,
    channels_last: bool,
    c_out: int,
    kernel: int,
    height: int,
    width: int,
    bias: bool,
) -> None:
    from faceswap.nets import blocks

    monkeypatch.setattr(blocks, "cpu_gemm_library", lambda: library)
    monkeypatch.setattr(blocks, "cpu_inference_gemm_library", lambda: library)
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    conv = blocks.OutputConv(16, c_out, kernel, padding=kernel // 2, bias=bias)
    conv = conv.to(memory_format=layout)
    ref = torch.nn.Conv2d(16, c_out, kernel, padding=kernel // 2, bias=bias)
    ref.load_state_dict(conv.state_dict())
    x = torch.rand(2, 16, height, width).contiguous(memory_format=layout).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    y, y_ref = conv(x), ref(x_ref)
    # BLAS machines take the tap GEMM, the others the stock conv in channels-last
    assert (type(y.grad_fn).__name__ == "_TapConvFnBackward") == (library == "blas")
    if library == "blas" or not channels_last:  # oneDNN keeps a channels-last input's layout
        assert y.is_contiguous()  # standard layout for the loss and the sigmoid split
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-5)
    g = torch.rand_like(y)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad, ref.weight.grad, rtol=1e-4, atol=1e-4)
    assert conv.weight.grad.is_contiguous(memory_format=layout)  # no copy in the optimizer
    if bias:
        torch.testing.assert_close(conv.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # inference (convert) takes the same route
        torch.testing.assert_close(conv(x), y_ref, rtol=1e-4, atol=1e-5)
    # ...or the other one where inference has its own library (an AVX2 non-Intel CPU)
    other = "onednn" if library == "blas" else "blas"
    monkeypatch.setattr(blocks, "cpu_inference_gemm_library", lambda: other)
    with torch.no_grad():
        assert conv._taps_apply(x) is (other == "blas")
        torch.testing.assert_close(conv(x), y_ref, rtol=1e-4, atol=1e-5)


def test_summary_counts_every_weight_and_the_forward_flops() -> None:
    from faceswap.nets.model import summarize_model

    cfg = small("liae")
    summary = summarize_model(cfg)
    model = build_model(cfg)
    assert summary.params == sum(p.numel() for p in model.parameters())
    assert list(summary.parts) == ["encoder", "inter_ab", "inter_b", "decoder"]
    assert sum(summary.parts.values()) == summary.params
    assert summary.train_bytes == 16 * summary.params
    # the dense bottleneck alone: 2 MACs per weight per face, a lower bound
    dense = sum(p.numel() for n, p in model.named_parameters() if "dense" in n and "weight" in n)
    assert summary.gflop_per_face * 1e9 >= 2 * dense
    assert summary.training_bytes(16) == summary.train_bytes + 16 * summary.activation_bytes
    # At least the input of each side and what the decoders draw, float32; convolutions
    # keep what they read, so twice the pixels keep about 4x (the dense part stays put).
    r = cfg.resolution
    assert summary.activation_bytes >= 2 * (3 * r * r * 4) * 2
    bigger = summarize_model(scaled(load_preset("liae"), width=1 / 128, resolution=2 * r))
    assert 3.0 < bigger.activation_bytes / summary.activation_bytes < 4.5


def test_presets_command_lists_them_and_refuses_unknown_names() -> None:
    from click.testing import CliRunner

    from faceswap.cli import cli

    out = CliRunner().invoke(cli, ["presets"])
    assert out.exit_code == 0, out.output
    for name in PRESETS.names():
        assert f"\n{name} " in out.output
    tiny = sum(p.numel() for p in build_model(load_preset("tiny")).parameters())
    assert f"{tiny / 1e6:.1f}M" in out.output.split("\ntiny ")[1].splitlines()[0]
    detail = CliRunner().invoke(cli, ["presets", "tiny"])
    assert "tiny: encoder " in detail.output and "decoder_b" in detail.output
    sized = CliRunner().invoke(cli, ["presets", "tiny", "--batch-size", "8"])
    header, row = sized.output.splitlines()[:2]
    assert header.endswith("GB @8") and "GB @16" not in header
    from faceswap.nets.model import summarize_model

    expected = summarize_model(load_preset("tiny")).training_bytes(8) / 2**30
    assert row.split()[-1] == f"{expected:.2f}"
    bad = CliRunner().invoke(cli, ["presets", "nope"])
    assert bad.exit_code != 0 and "unknown model preset 'nope'; choose from" in bad.output


def test_liae_morph_is_exact_at_its_ends_and_df_refuses_it() -> None:
    torch.manual_seed(4)
    model = build_model(small("liae")).eval()
    with torch.no_grad():
        z = model.encode(torch.rand(2, 3, 32, 32))
        for side, other in (("b", "a"), ("a", "b")):
            assert torch.equal(model.morph(z, side, 1.0).rgb, model.decode(z, side).rgb)
            assert torch.equal(model.morph(z, side, 0.0).rgb, model.decode(z, other).rgb)
    df = build_model(small("original"))
    with pytest.raises(FaceswapError, match="use a liae preset"):
        df.morph(torch.zeros(1), "b", 0.5)


def test_presets_command_reads_a_model_folder(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from faceswap.cli import cli
    from faceswap.faces.align import CropSpec
    from faceswap.train.checkpoint import save_model

    cfg = small("tiny")
    card = {"iteration": 12, "losses": {"loss_a": 0.5, "loss_b": 0.25},
            "data": {"a": {"folder": "/x/faces_a", "faces": 40}}}  # fmt: skip
    save_model(tmp_path / "m", build_model(cfg), crop=CropSpec(128), card=card)
    out = CliRunner().invoke(cli, ["presets", str(tmp_path / "m")])
    assert out.exit_code == 0, out.output
    params = sum(p.numel() for p in build_model(cfg).parameters())
    assert f"{params / 1e6:.1f}M" in out.output.splitlines()[1]
    assert f"{tmp_path / 'm'}: iteration 12; loss_a 0.5; loss_b 0.25; A faces_a (40 faces)" in (
        out.output
    )
    bad = CliRunner().invoke(cli, ["presets", str(tmp_path)])
    assert bad.exit_code != 0 and "not a faceswap model folder" in bad.output
