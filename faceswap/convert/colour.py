"""Colour transfer: make the swapped face take on the colours of the face it replaces.

Every mode works on aligned crops as float32 ``(S, S, 3)`` RGB in [0, 1] and uses only the
pixels under the face mask for its statistics, so hair and background do not bias the match.
``seamless`` changes nothing in crop space: its Poisson clone runs when the face is pasted
into the frame (:func:`faceswap.convert.blend.paste_face`), where the surrounding pixels are.

Register a new mode with::

    @register_colour("mine", "what it does, one line")
    def mine(face, target, mask): ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from faceswap.registry import Registry

# face (S,S,3) f32 [0,1], target (S,S,3) f32 [0,1], mask (S,S) f32 [0,1] -> (S,S,3) f32 [0,1]
TransferFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

# Fewer mask pixels than this and the statistics are noise: leave the face as it is.
_MIN_PIXELS = 16
_EPS = 1e-6


@dataclass(frozen=True)
class ColourMode:
    """A named colour mode.

    Attributes:
        name: registry name (what ``--colour`` takes).
        help: one line for ``--help``.
        transfer: crop-space colour transfer.
        seamless: also Poisson-clone the face into the frame when pasting.
    """

    name: str
    help: str
    transfer: TransferFn
    seamless: bool = False


COLOUR_MODES: Registry[ColourMode] = Registry("colour mode")


def register_colour(name: str, help: str, *, seamless: bool = False) -> Callable:
    """Decorator registering a :data:`TransferFn` under ``name`` in :data:`COLOUR_MODES`."""

    def decorator(fn: TransferFn) -> TransferFn:
        COLOUR_MODES.add(name, ColourMode(name, help, fn, seamless))
        return fn

    return decorator


def crop_colour_modes() -> list[str]:
    """Names of the modes that work on a face crop alone: all but those that clone into the
    frame (``seamless``). Training's colour transfer takes these."""
    return [name for name in COLOUR_MODES.names() if not COLOUR_MODES.get(name).seamless]


def transfer_colour(
    mode: str, face: np.ndarray, target: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """Apply colour mode ``mode`` (a :data:`COLOUR_MODES` name); see :data:`TransferFn`."""
    out = COLOUR_MODES.get(mode).transfer(
        np.asarray(face, dtype=np.float32),
        np.asarray(target, dtype=np.float32),
        np.asarray(mask, dtype=np.float32),
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def _core(mask: np.ndarray) -> np.ndarray | None:
    """uint8 (S, S) selection of the face (mask > 0.5), or None when too small to trust."""
    core = (np.asarray(mask) > 0.5).astype(np.uint8)
    if cv2.countNonZero(core) < _MIN_PIXELS:
        return None
    return core


def _stats(image: np.ndarray, core: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (float64 (3,)) of the selected pixels."""
    mean, std = cv2.meanStdDev(np.ascontiguousarray(image, dtype=np.float32), mask=core)
    return mean.reshape(-1), std.reshape(-1)


@register_colour("none", "keep the decoder's colours")
def _none(face: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return face


@register_colour("avg", "shift each RGB channel so the face's mean matches the original's")
def avg_colour(face: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    core = _core(mask)
    if core is None:
        return face
    shift = _stats(target, core)[0] - _stats(face, core)[0]
    return (face + shift.astype(np.float32)).astype(np.float32)


@register_colour("hist", "match each RGB channel's histogram to the original's")
def hist_match(face: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    sel = np.asarray(mask).reshape(-1) > 0.5
    if sel.sum() < _MIN_PIXELS:
        return face
    levels = np.arange(256, dtype=np.float64)
    f8 = np.clip(np.rint(face * 255.0), 0, 255).astype(np.uint8)
    t8 = np.clip(np.rint(target * 255.0), 0, 255).astype(np.uint8)
    out = np.empty_like(face)
    for c in range(3):
        f_hist = np.bincount(f8[..., c].reshape(-1)[sel], minlength=256).astype(np.float64)
        t_hist = np.bincount(t8[..., c].reshape(-1)[sel], minlength=256).astype(np.float64)
        f_cdf = np.cumsum(f_hist) / f_hist.sum()
        t_cdf = np.cumsum(t_hist) / t_hist.sum()
        # For each face level, the target level with the same cumulative share.
        lut = np.interp(f_cdf, t_cdf, levels) / 255.0
        out[..., c] = lut[f8[..., c]]
    return out


@register_colour("rct", "Reinhard colour transfer: match mean and spread in Lab space")
def reinhard(face: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    core = _core(mask)
    if core is None:
        return face
    # float32 RGB in [0, 1] -> L in [0, 100], a and b in about [-127, 127]; no uint8 clipping.
    f_lab = cv2.cvtColor(np.ascontiguousarray(face), cv2.COLOR_RGB2LAB)
    t_lab = cv2.cvtColor(np.ascontiguousarray(target), cv2.COLOR_RGB2LAB)
    f_mean, f_std = _stats(f_lab, core)
    t_mean, t_std = _stats(t_lab, core)
    # A flat face (std ~ 0) would blow up the gain; cap it so noise is not amplified.
    gain = np.minimum(t_std / np.maximum(f_std, _EPS), 4.0)
    lab = (f_lab - f_mean.astype(np.float32)) * gain.astype(np.float32) + t_mean.astype(np.float32)
    lab[..., 0] = np.clip(lab[..., 0], 0.0, 100.0)
    return cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)


def _sqrtm(cov: np.ndarray, inverse: bool = False, floor: float = 1e-5) -> np.ndarray:
    """(Inverse) square root of a symmetric positive semi-definite 3x3 matrix, its
    eigenvalues raised to ``floor`` (a flat face's near-zero variance would blow up)."""
    vals, vecs = np.linalg.eigh(cov)
    vals = np.maximum(vals, floor)
    root = np.sqrt(vals)
    if inverse:
        root = 1.0 / root
    return (vecs * root) @ vecs.T


def _moments(
    face: np.ndarray, target: np.ndarray, core: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """RGB means and covariances (float64) of the face's and the target's selected pixels."""
    sel = core.reshape(-1).astype(bool)
    f_sel = face.reshape(-1, 3)[sel].astype(np.float64)
    t_sel = target.reshape(-1, 3)[sel].astype(np.float64)
    f_cov = np.cov(f_sel, rowvar=False, bias=True)
    return f_sel.mean(axis=0), t_sel.mean(axis=0), f_cov, np.cov(t_sel, rowvar=False, bias=True)


def _affine(
    face: np.ndarray, transform: np.ndarray, f_mean: np.ndarray, t_mean: np.ndarray
) -> np.ndarray:
    """``transform (x - f_mean) + t_mean`` for every pixel x of ``face``, in float32."""
    f = face.reshape(-1, 3) - f_mean.astype(np.float32)
    out = f @ transform.astype(np.float32).T + t_mean.astype(np.float32)
    return out.reshape(face.shape).astype(np.float32)


@register_colour("lct", "linear colour transfer: match the RGB mean and covariance")
def linear_transfer(face: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    core = _core(mask)
    if core is None:
        return face
    f_mean, t_mean, f_cov, t_cov = _moments(face, target, core)
    # x' = C_t^1/2 C_f^-1/2 (x - mu_f) + mu_t maps the face's colour cloud onto the target's.
    return _affine(face, _sqrtm(t_cov) @ _sqrtm(f_cov, inverse=True), f_mean, t_mean)


@register_colour(
    "mkl", "Monge-Kantorovich transfer: the least colour change matching mean and covariance"
)
def monge_kantorovich(face: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # lct's C_t^1/2 C_f^-1/2 also matches the covariance but may rotate hues on the way; the
    # optimal-transport map between the two Gaussians moves every colour as little as
    # possible: T = C_f^-1/2 (C_f^1/2 C_t C_f^1/2)^1/2 C_f^-1/2 (Pitie and Kokaram 2007).
    core = _core(mask)
    if core is None:
        return face
    f_mean, t_mean, f_cov, t_cov = _moments(face, target, core)
    f_root, f_root_inv = _sqrtm(f_cov), _sqrtm(f_cov, inverse=True)
    # The middle product's eigenvalues are variances squared: floor them far lower.
    middle = _sqrtm(f_root @ t_cov @ f_root, floor=1e-12)
    return _affine(face, f_root_inv @ middle @ f_root_inv, f_mean, t_mean)


# Sliced optimal transport: rounds of random 3-D rotations, each a 1-D quantile match.
_SOT_ROUNDS = 8
_SOT_QUANTILES = 64


@register_colour(
    "sot", "sliced optimal transport: match the whole colour distribution, not just its moments"
)
def sliced_transport(face: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # Each round projects both colour clouds on three random orthogonal axes and moves the
    # face's colours along each axis by the monotone map that matches the two projections'
    # quantiles; the rounds converge to a face whose colours are distributed as the
    # target's (DeepFaceLab's sot). The maps are functions of colour, so the pixels outside
    # the mask move with their colours; seeded, so a frame converts the same every time.
    core = _core(mask)
    if core is None:
        return face
    sel = core.reshape(-1).astype(bool)
    # Colours as rows (3, N): each projection is then a contiguous row for np.interp.
    out = np.ascontiguousarray(face.reshape(-1, 3).T, dtype=np.float64)
    t_sel = np.ascontiguousarray(target.reshape(-1, 3)[sel].T, dtype=np.float64)
    rng = np.random.default_rng(0)
    picks_f = np.linspace(0, int(sel.sum()) - 1, _SOT_QUANTILES).round().astype(int)
    picks_t = np.linspace(0, t_sel.shape[1] - 1, _SOT_QUANTILES).round().astype(int)
    for _ in range(_SOT_ROUNDS):
        axes, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        proj = axes.T @ out
        f_q = np.sort(proj[:, sel], axis=1)[:, picks_f]
        t_q = np.sort(axes.T @ t_sel, axis=1)[:, picks_t]
        for axis in range(3):
            # np.interp clamps beyond the end quantiles: outliers keep their offset instead.
            xs, idx = np.unique(f_q[axis], return_index=True)
            proj[axis] += np.interp(proj[axis], xs, t_q[axis, idx] - xs)
        out = axes @ proj
    return np.ascontiguousarray(out.T).reshape(face.shape).astype(np.float32)


@register_colour(
    "seamless", "Poisson (seamless) clone into the frame: no seam, lighting follows", seamless=True
)
def _seamless(face: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return face


COLOUR_MODES.add(
    "seamless-hist",
    ColourMode(
        "seamless-hist",
        "hist, then the Poisson clone: the face's own colours matched before the clone "
        "blends its edge (DFL's seamless-hist-match)",
        hist_match,
        seamless=True,
    ),
)


#: Lab units (a, b in about [-127, 127]) that ``temperature`` and ``tint`` of 100 shift by.
GRADE_SHIFT = 20.0


@dataclass(frozen=True)
class Grade:
    """A manual grade of the swapped face (faceswap's manual balance), each a percent in
    [-100, 100], 0 leaving it alone, applied in Lab after the colour mode.

    Attributes:
        brightness: lightness toward white (> 0: that share of the way) or black (< 0).
        contrast: lightness spread about the face's own mean under the mask (-100: flat).
        saturation: colourfulness, a and b scaled by 1 + p/100 (-100: grey).
        temperature: warmer (> 0: toward yellow) or cooler (toward blue), Lab b shifted by
            ``GRADE_SHIFT`` at 100.
        tint: toward magenta (> 0) or green, Lab a shifted alike.
    """

    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    temperature: float = 0.0
    tint: float = 0.0

    def __bool__(self) -> bool:
        return any(dataclasses.astuple(self))

    def apply(self, face: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The graded (S, S, 3) float32 RGB face in [0, 1]; ``mask`` (S, S) in [0, 1] says
        where the face is (for the contrast's mean)."""
        if not self:
            return face
        lab = cv2.cvtColor(np.ascontiguousarray(face, dtype=np.float32), cv2.COLOR_RGB2LAB)
        light, ab = lab[..., 0], lab[..., 1:]
        ab += np.array([self.tint, self.temperature], np.float32) * (GRADE_SHIFT / 100.0)
        ab *= 1.0 + self.saturation / 100.0
        if self.contrast:
            weight = np.asarray(mask, np.float32)
            mean = float((light * weight).sum() / max(float(weight.sum()), 1e-6))
            light[...] = mean + (light - mean) * (1.0 + self.contrast / 100.0)
        if self.brightness > 0:
            light += (100.0 - light) * (self.brightness / 100.0)
        elif self.brightness < 0:
            light *= 1.0 + self.brightness / 100.0
        np.clip(light, 0.0, 100.0, out=light)
        return np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB), 0.0, 1.0)
