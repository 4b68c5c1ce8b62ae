"""Building blocks shared by the encoders and decoders (convs, pixel-shuffle upscales)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from faceswap.device import cpu_gemm_library, cpu_inference_gemm_library

#: Run the convs with tiny output maps, the dense layers and the output convs through
#: explicit GEMMs on the CPU (see :class:`Conv2d`, :class:`Linear` and :class:`OutputConv`).
#: A switch so benchmarks can compare; the results are equal either way up to rounding.
SMALL_MAP_WEIGHT_GRAD = True
# Output maps up to this many pixels (4x4) take the GEMM path; from 8x8 oneDNN's own
# kernels were as fast in our measurements.
_SMALL_MAP_PIXELS = 16
# Under CPU bf16, and in float32 inference, the GEMM route pays for large weights only
# (``original``: 13-19M, 1.3x a bf16 step; ``lightweight``: 3-5M, 1.1x); for ``tiny``'s
# (under 1M) it was 6-15 % slower.
_GEMM_MIN_WEIGHTS = 1 << 20


def _gemm_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` for ``a`` (P, M) with P a multiple of 64 and ``b`` (Q, M), via oneDNN.

    Weight gradients are such products with M (examples x output pixels) small and the
    result large. Both BLAS and oneDNN's own weight-gradient kernels run these at a fraction
    of their peak; laid out as a (P/64, M, 8, 8) channels-last batch through oneDNN's 1x1
    convolution forward kernel the same GEMM ran 2-5x faster.
    """
    p, m = a.shape
    batch = a.reshape(p // 64, 8, 8, m).permute(0, 3, 1, 2)
    prod = F.conv2d(batch, b.reshape(b.shape[0], m, 1, 1))  # (P/64, Q, 8, 8)
    return prod.permute(0, 2, 3, 1).reshape(p, b.shape[0])


def _use_gemm_grad(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        SMALL_MAP_WEIGHT_GRAD
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and weight.requires_grad
        and torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
    )


def init_conv(conv: nn.Conv2d | nn.Linear, negative_slope: float) -> None:
    """He-uniform weights for a LeakyReLU net and zero bias (the deepfakes/DFL default)."""
    nn.init.kaiming_uniform_(conv.weight, a=negative_slope, nonlinearity="leaky_relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def icnr_(weight: torch.Tensor, scale: int, negative_slope: float) -> None:
    """ICNR init of a conv feeding ``PixelShuffle(scale)``, in place.

    Every group of ``scale**2`` output channels that the shuffle spreads over one output
    pixel block gets the same kernel, so at step 0 the upscale equals a nearest-neighbour
    resize: no checkerboard artefacts (Aitken et al. 2017).
    """
    out_ch = weight.shape[0] // (scale * scale)
    base = torch.empty(out_ch, *weight.shape[1:], dtype=weight.dtype, device=weight.device)
    nn.init.kaiming_uniform_(base, a=negative_slope, nonlinearity="leaky_relu")
    with torch.no_grad():
        weight.copy_(base.repeat_interleave(scale * scale, dim=0))


class _SmallMapConvFn(torch.autograd.Function):
    """conv2d on a tiny output map with its GEMMs run through :func:`_gemm_nt`.

    For the convs with a tiny output map (the 4x4 layers around the bottleneck) the products
    have a small M = N*H*W against large C*k*k and O, and oneDNN's direct kernels, which
    block over the spatial map, lose to its GEMM: always for the weight gradient (2x
    slower), and for strided convs also in the forward and the input gradient (20-30%
    slower). Those then run as im2col + GEMM (the columns shared by the forward and the
    weight gradient) and GEMM + col2im; stride-1 convs keep oneDNN's forward and input
    gradient, which were as fast as the GEMM.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: int,
        padding: int,
    ) -> torch.Tensor:
        n, _, h, w = x.shape
        out_ch, in_ch, k, _ = weight.shape
        oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
        # Columns (M, C*k*k): rows ordered (n, oy, ox), columns in the weight's (c, kh, kw).
        cols = F.unfold(x, k, padding=padding, stride=stride).transpose(1, 2)
        cols = cols.reshape(n * oh * ow, in_ch * k * k)
        if stride > 1:
            y = _gemm_nt(weight.reshape(out_ch, -1), cols)  # (O, M)
            y = y.view(out_ch, n, oh, ow).permute(1, 0, 2, 3).contiguous()
            if bias is not None:
                y += bias.view(1, -1, 1, 1)
        else:
            y = F.conv2d(x, weight, bias, stride, padding)
        ctx.save_for_backward(x, cols, weight)
        ctx.conf = (stride, padding, bias is not None)  # type: ignore[attr-defined]
        return y

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, cols, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        stride, padding, has_bias = ctx.conf  # type: ignore[attr-defined]
        out_ch, in_ch, k, _ = weight.shape
        n, _, oh, ow = grad_out.shape
        grad_out = grad_out.contiguous()
        grad_x = grad_w = grad_b = None
        if has_bias:
            grad_b = grad_out.sum((0, 2, 3))
        if ctx.needs_input_grad[0] and stride > 1:  # type: ignore[attr-defined]
            # d(cols) (M, C*k*k) = dY (M, O) @ W (O, C*k*k), then summed back onto pixels.
            dy_rows = grad_out.permute(0, 2, 3, 1).reshape(n * oh * ow, out_ch)
            w_t = weight.reshape(out_ch, -1).t().contiguous()
            if dy_rows.shape[0] % 64 == 0:
                grad_cols = _gemm_nt(dy_rows, w_t)
            elif w_t.shape[0] % 64 == 0:
                grad_cols = _gemm_nt(w_t, dy_rows).t()
            else:
                grad_cols = dy_rows @ w_t.t()
            grad_cols = grad_cols.reshape(n, oh * ow, -1).transpose(1, 2)
            grad_x = F.fold(grad_cols, x.shape[-2:], k, padding=padding, stride=stride)
        elif ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            # Input gradient only: asking oneDNN for the bias gradient in the same call
            # sends it down its slow weight-gradient path.
            grad_x = torch.ops.aten.convolution_backward(
                grad_out,
                x,
                weight,
                None,
                [stride, stride],
                [padding, padding],
                [1, 1],
                False,
                [0, 0],
                1,
                [True, False, False],
            )[0]
        if ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            dy = grad_out.permute(1, 0, 2, 3).reshape(out_ch, -1)  # (O, M)
            grad_w = _gemm_nt(dy, cols.t().contiguous()).reshape(out_ch, in_ch, k, k)
        return grad_x, grad_w, grad_b, None, None


def _cpu_bf16_training(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        SMALL_MAP_WEIGHT_GRAD
        and x.device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
        and weight.dtype == torch.float32
        and weight.requires_grad
        and torch.is_grad_enabled()
    )


def _weight_rows(weight: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """A conv weight (O, C, k, k) as GEMM rows (O, C*k*k) without a copy where possible.

    Returns ``(rows, pixel_major)``: a channels-last weight is already (O, k, k, C) in
    memory, so its rows are a view with the columns in (kh, kw, c) order (``pixel_major``);
    any other weight is reshaped, columns in (c, kh, kw) order. Reshaping a channels-last
    weight instead copies it through a slow transpose (over 100 ms for ``original``'s
    1024 -> 2048 upscale conv on 2 cores).
    """
    if not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last):
        return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1), True
    return weight.reshape(weight.shape[0], -1), False


def _out_size(size: int, k: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - k) // stride + 1


def _im2col(x: torch.Tensor, k: int, stride: int, padding: int, pixel_major: bool) -> torch.Tensor:
    """The conv's input patches as GEMM columns (N*OH*OW, C*k*k), rows in (n, oy, ox)
    order, columns in the weight rows' order (see :func:`_weight_rows`)."""
    n, c, h, w = x.shape
    oh, ow = _out_size(h, k, stride, padding), _out_size(w, k, stride, padding)
    if not pixel_major:
        cols = F.unfold(x, k, padding=padding, stride=stride)
        return cols.transpose(1, 2).reshape(n * oh * ow, -1)
    padded = F.pad(x, (padding,) * 4).contiguous(memory_format=torch.channels_last)
    s_n, s_c, s_h, s_w = padded.stride()
    patches = padded.as_strided(
        (n, oh, ow, k, k, c), (s_n, stride * s_h, stride * s_w, s_h, s_w, s_c)
    )
    return patches.reshape(n * oh * ow, k * k * c)


def _col2im(
    grad_cols: torch.Tensor,
    x_shape: torch.Size,
    k: int,
    stride: int,
    padding: int,
    pixel_major: bool,
) -> torch.Tensor:
    """The input gradient from the columns' gradient: each patch summed back onto its
    pixels (the adjoint of :func:`_im2col`); channels-last when ``pixel_major``."""
    n, c, h, w = x_shape
    oh, ow = _out_size(h, k, stride, padding), _out_size(w, k, stride, padding)
    if not pixel_major:
        grad_cols = grad_cols.reshape(n, oh * ow, -1).transpose(1, 2)
        return F.fold(grad_cols, (h, w), k, padding=padding, stride=stride)
    patches = grad_cols.view(n, oh, ow, k, k, c)
    padded = grad_cols.new_zeros((n, h + 2 * padding, w + 2 * padding, c))
    for i in range(k):
        for j in range(k):
            rows = slice(i, i + stride * (oh - 1) + 1, stride)
            cols = slice(j, j + stride * (ow - 1) + 1, stride)
            padded[:, rows, cols] += patches[:, :, :, i, j]
    grad_x = padded[:, padding : padding + h, padding : padding + w].permute(0, 3, 1, 2)
    return grad_x.contiguous(memory_format=torch.channels_last)


def _gemm_conv(
    x: torch.Tensor,
    w_rows: torch.Tensor,
    pixel_major: bool,
    bias: torch.Tensor | None,
    k: int,
    stride: int,
    padding: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """conv2d as im2col + one GEMM in ``w_rows``' dtype: ``(y, cols)``.

    ``w_rows`` and ``pixel_major`` come from :func:`_weight_rows`. ``y`` (N, O, OH, OW) is
    in a channels-last layout (the GEMM writes straight into it: its (M, O) rows are the
    (n, oy, ox) pixels), a fresh tensor rather than a view, so an in-place activation after
    it is allowed; ``cols`` (M, C*k*k) is kept for the weight gradient.
    """
    n, _, h, w = x.shape
    out_ch = w_rows.shape[0]
    oh, ow = _out_size(h, k, stride, padding), _out_size(w, k, stride, padding)
    cols = _im2col(x.to(w_rows.dtype), k, stride, padding, pixel_major)
    y = torch.empty((n, out_ch, oh, ow), dtype=w_rows.dtype, memory_format=torch.channels_last)
    rows = y.permute(0, 2, 3, 1).view(n * oh * ow, out_ch)
    if bias is None:
        torch.mm(cols, w_rows.t(), out=rows)
    else:
        torch.addmm(bias.to(w_rows.dtype), cols, w_rows.t(), out=rows)
    return y, cols


def _cpu_gemm_inference(x: torch.Tensor, weight: torch.Tensor) -> bool:
    # Inference on the CPU (``Swapper``): a model cast to bf16 for --amp, or a float32 one
    # where BLAS is the faster GEMM library for inference.
    return (
        SMALL_MAP_WEIGHT_GRAD
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and (
            x.dtype == weight.dtype == torch.bfloat16
            or (x.dtype == weight.dtype == torch.float32 and cpu_inference_gemm_library() == "blas")
        )
    )


class _GemmConvFn(torch.autograd.Function):
    """conv2d on a tiny output map as im2col + three ``torch.mm`` GEMMs in ``dtype``.

    oneDNN's convolutions block over the spatial map, and on a 4x4 output they run at a
    fraction of the GEMM speed. Under CPU bf16 autocast (AMX) the 1024 -> 2048 3x3 conv of
    ``original`` on 32 faces took 264 ms forward + backward in oneDNN, 124 ms here. In
    float32, where BLAS is the faster GEMM library (:func:`~faceswap.device.cpu_gemm_library`),
    the two 4x4 convs of ``original`` took 540 ms in oneDNN and 380 ms here (channels-last:
    750 and 320 ms). From 8x8 maps oneDNN was as fast or faster. The columns follow the
    weight's layout (:func:`_weight_rows`), so a channels-last weight is never transposed.
    Under bf16 the output is bf16 in a channels-last layout, as autocast's own conv gives,
    and the weight gradient comes back in float32 for the float32 weight; in float32 the
    output has the input's memory format. The weight gradient has the weight's layout.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: int,
        padding: int,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        k = weight.shape[-1]
        with torch.autocast("cpu", enabled=False):
            w_rows, pixel_major = _weight_rows(weight.to(dtype))
            y, cols = _gemm_conv(x, w_rows, pixel_major, bias, k, stride, padding)
        if dtype == x.dtype and not x.is_contiguous(memory_format=torch.channels_last):
            y = y.contiguous()
        ctx.save_for_backward(cols, w_rows)
        ctx.conf = (x.shape, x.dtype, stride, padding, k, pixel_major, bias is not None)  # type: ignore[attr-defined]
        return y

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        cols, w_rows = ctx.saved_tensors  # type: ignore[attr-defined]
        x_shape, x_dtype, stride, padding, k, pixel_major, has_bias = ctx.conf  # type: ignore[attr-defined]
        n, out_ch, oh, ow = grad_out.shape
        dy = grad_out.to(w_rows.dtype).permute(0, 2, 3, 1).reshape(n * oh * ow, out_ch)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            grad_x = _col2im(dy @ w_rows, x_shape, k, stride, padding, pixel_major).to(x_dtype)
        if ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            grad_rows = (dy.t() @ cols).float()
            if pixel_major:  # (O, kh, kw, C) in memory: the channels-last weight's layout
                grad_w = grad_rows.view(out_ch, k, k, -1).permute(0, 3, 1, 2)
            else:
                grad_w = grad_rows.view(out_ch, -1, k, k)
        if has_bias:
            grad_b = grad_out.float().sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state dict), faster to train on tiny maps on the CPU.

    Square kernels, equal stride and padding on both axes, no groups or dilation. On the CPU,
    while training, when the output map has at most 16 pixels, it runs in float32 as
    :class:`_GemmConvFn` where BLAS is the faster GEMM library and else as
    :class:`_SmallMapConvFn` (when ``out_channels`` is a multiple of 64), and under bf16
    autocast as :class:`_GemmConvFn` in bf16 (weights over 1M values); in inference a bf16
    model, and a float32 one where BLAS is faster, run the same GEMM (weights over 1M
    values). Everywhere else this is the stock convolution.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            self.groups == 1
            and self.dilation == (1, 1)
            and self._out_pixels(x) <= _SMALL_MAP_PIXELS
            # Under torch.compile the compiler picks the kernels (eager tricks only break
            # its graph).
            and not torch.compiler.is_compiling()
        ):
            conf = (self.stride[0], self.padding[0])
            if _use_gemm_grad(x, self.weight):
                if cpu_gemm_library() == "blas":
                    return _GemmConvFn.apply(x, self.weight, self.bias, *conf, torch.float32)
                if self.out_channels % 64 == 0:
                    return _SmallMapConvFn.apply(x, self.weight, self.bias, *conf)
            if self.weight.numel() >= _GEMM_MIN_WEIGHTS:
                if _cpu_bf16_training(x, self.weight):
                    return _GemmConvFn.apply(x, self.weight, self.bias, *conf, torch.bfloat16)
                if _cpu_gemm_inference(x, self.weight):
                    w_rows, pixel_major = _weight_rows(self.weight.detach())
                    k = self.kernel_size[0]
                    y = _gemm_conv(x, w_rows, pixel_major, self.bias, k, *conf)[0]
                    if x.dtype == torch.float32 and x.is_contiguous():
                        y = y.contiguous()  # float32 keeps the input's layout, as oneDNN does
                    return y
        return super().forward(x)

    def _out_pixels(self, x: torch.Tensor) -> int:
        k, s, p = self.kernel_size[0], self.stride[0], self.padding[0]
        h = (x.shape[-2] + 2 * p - k) // s + 1
        w = (x.shape[-1] + 2 * p - k) // s + 1
        return h * w


class _LinearFn(torch.autograd.Function):
    """``F.linear`` whose forward goes through :func:`_gemm_nt`, and its weight gradient
    dW (O, I) = dY^T @ X too where oneDNN is the faster GEMM library.

    For the dense bottleneck (16384 <-> 1024 features, a batch of 32) the forward ran at
    310-410 GFLOP/s in the oneDNN layout against 190-250 through BLAS. For dW, where oneDNN
    is the faster library BLAS ran at 20-50 GFLOP/s and oneDNN at 300+; on an Intel CPU
    BLAS ran at 330-430 and oneDNN at 60 for one of the two products.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None  # type: ignore[attr-defined]
        # y^T = W @ x^T: the same oneDNN layout ran 2-3x faster than BLAS for a batch of 32.
        y = _gemm_nt(weight, x.contiguous()).t().contiguous()
        return y if bias is None else y.add_(bias)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        grad_x = grad_out @ weight if ctx.needs_input_grad[0] else None  # type: ignore[attr-defined]
        grad_b = grad_out.sum(0) if ctx.has_bias else None  # type: ignore[attr-defined]
        grad_w = None
        if ctx.needs_input_grad[1] and cpu_gemm_library() == "blas":  # type: ignore[attr-defined]
            grad_w = grad_out.t() @ x
        elif ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            grad_w = _gemm_nt(grad_out.t().contiguous(), x.t().contiguous())
        return grad_x, grad_w, grad_b


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters and state dict), faster to train on the CPU.

    On the CPU, in float32, while training, for 2-D input and ``out_features`` a multiple of
    64, it runs as :class:`_LinearFn`; everywhere else this is the stock layer.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.dim() == 2
            and self.out_features % 64 == 0
            and _use_gemm_grad(x, self.weight)
            and not torch.compiler.is_compiling()
        ):
            return _LinearFn.apply(x, self.weight, self.bias)
        return super().forward(x)


def _tap_windows(size: int, offset: int) -> tuple[slice, slice]:
    """For one kernel tap ``offset`` pixels off centre: the output pixels it reaches and the
    input pixels they read, ``out[i] += in[i + offset]`` with zero padding."""
    lo, hi = max(0, -offset), min(size, size - offset)
    return slice(lo, hi), slice(lo + offset, hi + offset)


def _taps(k: int, h: int, w: int) -> Iterator[tuple[int, tuple[slice, slice], tuple[slice, slice]]]:
    """Each tap of a k x k 'same' kernel on an h x w map: ``(tap, out, in)``, the output
    window (rows, cols) it adds to and the input window it reads."""
    for tap in range(k * k):
        rows_out, rows_in = _tap_windows(h, tap // k - k // 2)
        cols_out, cols_in = _tap_windows(w, tap % k - k // 2)
        yield tap, (rows_out, cols_out), (rows_in, cols_in)


def _tap_rows(weight: torch.Tensor) -> torch.Tensor:
    """A conv weight (O, C, k, k) as (k*k*O, C): row ``t*O + o`` is tap ``t``'s weights of
    output channel ``o``, taps in (ky, kx) order."""
    o, c, k, _ = weight.shape
    return weight.permute(2, 3, 0, 1).reshape(k * k * o, c)


class _TapConvFn(torch.autograd.Function):
    """A 'same' stride-1 conv with few output channels as one GEMM plus shifted sums.

    With 3-4 output channels, as im2col or in oneDNN the products have a dimension of 3
    and run at a fraction of the CPU's speed (``original``'s 5x5 64 -> 3 conv on 16 faces
    of 64 px: 11 ms forward, 14 backward in channels-last oneDNN). Instead every tap of
    every output channel is one GEMM column: ``Z = W_taps @ X`` (k*k*O rows, one per pixel
    of the input), and the output is the k*k tap planes of ``Z`` summed, each shifted by
    its offset. The backward is the adjoint: the output gradient shifted into k*k planes,
    then two GEMMs of the same shape (5 and 10 ms for that conv). Needs the input in
    channels-last (its pixels are then the GEMM's rows); the output is standard NCHW.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        out_ch, _, k, _ = weight.shape
        pixels = x.permute(0, 2, 3, 1).reshape(n * h * w, c)  # a view of channels-last x
        planes = torch.mm(_tap_rows(weight), pixels.t()).view(k * k, out_ch, n, h, w)
        planes = planes.permute(0, 2, 1, 3, 4)  # (taps, N, O, H, W)
        if bias is None:
            y = x.new_zeros((n, out_ch, h, w))
        else:
            y = bias.view(1, out_ch, 1, 1).expand(n, out_ch, h, w).clone()
        for tap, (rows_out, cols_out), (rows_in, cols_in) in _taps(k, h, w):
            y[:, :, rows_out, cols_out] += planes[tap, :, :, rows_in, cols_in]
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None  # type: ignore[attr-defined]
        return y

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        n, c, h, w = x.shape
        out_ch, _, k, _ = weight.shape
        grad_planes = grad_out.new_zeros((k * k, out_ch, n, h, w))
        grad_view = grad_planes.permute(0, 2, 1, 3, 4)  # (taps, N, O, H, W)
        for tap, (rows_out, cols_out), (rows_in, cols_in) in _taps(k, h, w):
            grad_view[tap, :, :, rows_in, cols_in] = grad_out[:, :, rows_out, cols_out]
        grad_planes = grad_planes.view(k * k * out_ch, n * h * w)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            rows = torch.mm(grad_planes.t(), _tap_rows(weight))  # (pixels, C): channels-last
            grad_x = rows.view(n, h, w, c).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            pixels = x.permute(0, 2, 3, 1).reshape(n * h * w, c)
            grad_rows = torch.mm(grad_planes, pixels).view(k, k, out_ch, c)
            layout = (
                torch.channels_last
                if weight.is_contiguous(memory_format=torch.channels_last)
                and not weight.is_contiguous()
                else torch.contiguous_format
            )
            grad_w = grad_rows.permute(2, 3, 0, 1).contiguous(memory_format=layout)
        if ctx.has_bias:  # type: ignore[attr-defined]
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b


class OutputConv(nn.Conv2d):
    """The decoder's last conv (a few output channels: RGB, mask), same parameters as
    ``nn.Conv2d``.

    With 3-4 output channels oneDNN's NCHW kernels run at a small fraction of the CPU's
    speed; in channels-last its forward and backward together took 40% less time, more than
    the layout conversions cost. Where BLAS is the faster GEMM library
    (:func:`~faceswap.device.cpu_gemm_library`; in inference
    :func:`~faceswap.device.cpu_inference_gemm_library`) a float32 'same' conv runs as
    :class:`_TapConvFn` instead, 1.6x faster again. The output comes back in the standard
    layout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._taps_apply(x):
            x = x.contiguous(memory_format=torch.channels_last)
            return _TapConvFn.apply(x, self.weight, self.bias)
        if x.device.type != "cpu" or x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        y = super().forward(x.contiguous(memory_format=torch.channels_last))
        return y.contiguous()

    def _taps_apply(self, x: torch.Tensor) -> bool:
        k = self.kernel_size[0]
        return (
            SMALL_MAP_WEIGHT_GRAD
            and x.device.type == "cpu"
            and x.dtype == self.weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
            and not torch.compiler.is_compiling()
            and self.groups == 1
            and self.kernel_size == (k, k)
            and k % 2 == 1
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.padding == (k // 2, k // 2)
            and self.padding_mode == "zeros"
            and (cpu_gemm_library() if torch.is_grad_enabled() else cpu_inference_gemm_library())
            == "blas"
        )


class DownBlock(nn.Sequential):
    """Conv (stride 2, 'same' padding) + LeakyReLU: (N, C_in, H, W) → (N, C_out, H/2, W/2)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, negative_slope: float) -> None:
        conv = Conv2d(c_in, c_out, kernel, stride=2, padding=kernel // 2)
        init_conv(conv, negative_slope)
        super().__init__(conv, nn.LeakyReLU(negative_slope, inplace=True))


class UpscaleBlock(nn.Sequential):
    """Conv to 4x channels + LeakyReLU + PixelShuffle(2): (N, C_in, H, W) → (N, C_out, 2H, 2W)."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, negative_slope: float, icnr: bool = True
    ) -> None:
        conv = Conv2d(c_in, c_out * 4, kernel, padding=kernel // 2)
        init_conv(conv, negative_slope)
        if icnr:
            icnr_(conv.weight, 2, negative_slope)
        super().__init__(conv, nn.LeakyReLU(negative_slope, inplace=True), nn.PixelShuffle(2))


class ResBlock(nn.Module):
    """DFL-style residual block: x + conv(lrelu(conv(x))), then LeakyReLU; shape-preserving."""

    def __init__(self, channels: int, kernel: int, negative_slope: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(channels, channels, kernel, padding=kernel // 2)
        init_conv(self.conv1, negative_slope)
        init_conv(self.conv2, negative_slope)
        self.act = nn.LeakyReLU(negative_slope)
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.act(self.conv1(x)))
        return self.act(x + y)


def pixel_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each sample scaled to unit root-mean-square over all its features (DFL's ``-u``:
    the encoder's output before the bottleneck), the statistic taken in float32."""
    dims = tuple(range(1, x.ndim))
    scale = torch.rsqrt(x.float().square().mean(dim=dims, keepdim=True) + eps)
    return x * scale.to(x.dtype)


class DenseToMap(nn.Module):
    """Flatten → dense ``bottleneck`` → dense → reshape (C, L, L) → upscale.

    The face code of the deepfakes/DFL layouts. No activation between the dense layers (as in
    the original model): they act as a linear low-rank bottleneck.
    Shapes: (N, C_in, S, S) → (N, c_up, 2L, 2L).
    """

    def __init__(
        self,
        in_features: int,
        bottleneck: int,
        channels: int,
        size: int,
        c_up: int,
        kernel: int,
        negative_slope: float,
        icnr: bool = True,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.size = size
        self.dense1 = Linear(in_features, bottleneck)
        self.dense2 = Linear(bottleneck, channels * size * size)
        for layer in (self.dense1, self.dense2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.upscale = UpscaleBlock(channels, c_up, kernel, negative_slope, icnr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dense2(self.dense1(torch.flatten(x, 1)))
        h = h.view(-1, self.channels, self.size, self.size)
        if x.is_contiguous(memory_format=torch.channels_last):
            # Keep the caller's layout for the convs that follow (oneDNN / cuDNN NHWC paths).
            h = h.contiguous(memory_format=torch.channels_last)
        return self.upscale(h)
