"""An invisible watermark in the pixels of swapped faces, and the test that finds it.

The mark is a fixed pseudo-random field of soft blobs in luma, 2.6 code values of 255 rms,
added only where a swapped face was blended in (the blend matte), so a frame without a face
stays byte for byte the input and the rest of a frame is untouched. The field is laid out on
a lattice measured in frame *heights* from the frame's centre (:data:`CELLS_PER_HEIGHT`
cells a height), so a video scaled up or down, or re-encoded, still carries the same field
where the faces are.

Reading it back (:func:`read_watermark`) band-passes each frame's luma, evens out its local
contrast (the face's own texture is the noise the mark must beat) and correlates it with the
field inside each face, or over face-sized windows when no face region is given. The same is
done with :data:`DECOYS` other fields of the same kind; as no decoy was ever embedded, their
scores show how large a chance match is on this very footage, and the mark's score is given
in standard deviations of theirs (``z``). Summed over frames the evidence grows: a second of
video at 30 fps is far more certain than one frame. The mirror image of the field is read
alongside it: re-uploads are often flipped left to right, and as the lattice is centred a
flip maps the field exactly onto its mirror image.

This is a provenance mark for honest outputs, not a defence against someone set on removing
it: the field is the same for every output, so averaging many of them would reveal it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

#: The field's identity (mark version 1); the decoys are the keys after it.
KEY = 0x66616365_73776170
#: Lattice cells a frame height: 1.7 px at 360p, 5 px at 1080p (finer fields carry more cells
#: in a small face; 216 read best on the test media among 144-288, at 180p to 1080p).
CELLS_PER_HEIGHT = 216
#: Scale of the field in code values of 255: its rms is about 0.86 of this, its peaks 1.9.
STRENGTH = 3.0
#: Frames are read at this height at most (the field is defined per height, so nothing is
#: lost by reading a 4K frame at 360 lines, and the cost stays that of a small frame).
ANALYSIS_HEIGHT = 360
#: Fields of the same kind, never embedded, that calibrate the score.
DECOYS = 32
#: ``z`` at or above which the mark counts as found (unmarked footage stays within about
#: ±3: the test media read -1.8 to 2.5; the larger of the plain and the mirrored reading).
FOUND_Z = 5.0
NAME = "faceswap-wm1"


def _lattice_signs(key: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """±1 at each lattice point (row, col), a hash of the key and the point (splitmix64)."""
    r = rows.astype(np.int64).astype(np.uint64)[:, None]
    c = cols.astype(np.int64).astype(np.uint64)[None, :]
    with np.errstate(over="ignore"):
        z = (
            np.uint64(key)
            ^ (r * np.uint64(0xD1B54A32D192ED03))
            ^ (c * np.uint64(0xABC98388FB8FAC03))
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return np.where(z >> np.uint64(63), np.float32(1.0), np.float32(-1.0))


@functools.lru_cache(maxsize=8)
def _field(height: int, width: int, key: int) -> np.ndarray:
    cell = height / CELLS_PER_HEIGHT
    # Lattice points cover the frame with a margin for the cubic kernel.
    u0, u1 = int(np.floor(-width / 2 / cell)) - 3, int(np.ceil(width / 2 / cell)) + 3
    v0, v1 = int(np.floor(-height / 2 / cell)) - 3, int(np.ceil(height / 2 / cell)) + 3
    signs = _lattice_signs(key, np.arange(v0, v1 + 1), np.arange(u0, u1 + 1))
    # Pixel x (centre at x + 0.5) sits at lattice coordinate (x + 0.5 - width / 2) / cell.
    to_lattice = np.array(
        [
            [1 / cell, 0, (0.5 - width / 2) / cell - u0],
            [0, 1 / cell, (0.5 - height / 2) / cell - v0],
        ]
    )
    out = cv2.warpAffine(
        signs, to_lattice, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    )
    out.flags.writeable = False
    return out


def field(height: int, width: int, key: int = KEY) -> np.ndarray:
    """The mark's field for a frame of this size: float32 (height, width), about ±1."""
    return _field(int(height), int(width), int(key))


class Watermark:
    """The pixel mark :func:`faceswap.provenance.frame_marker` applies to converted frames.

    Call with an RGB frame (uint8, or uint16 for deep sources), its index and the blend
    matte (uint8 (H, W), 255 where a swapped face covers the frame, 0 elsewhere); returns the
    marked frame. Only pixels under the matte change, by :data:`STRENGTH` times the field
    (scaled to the frame's range), equally in R, G and B, so hue is kept.
    """

    name = NAME

    def __call__(self, frame: np.ndarray, index: int, coverage: np.ndarray | None) -> np.ndarray:
        if coverage is None:
            return frame
        x0, y0, w, h = cv2.boundingRect(np.ascontiguousarray(coverage, np.uint8))
        if w == 0 or h == 0:
            return frame
        x1, y1 = x0 + w, y0 + h
        peak = 65535.0 if frame.dtype == np.uint16 else 255.0
        weight = coverage[y0:y1, x0:x1].astype(np.float32) * (STRENGTH * peak / 255.0 / 255.0)
        delta = field(*frame.shape[:2])[y0:y1, x0:x1] * weight
        out = np.array(frame, copy=True)
        region = out[y0:y1, x0:x1].astype(np.float32) + delta[..., None]
        out[y0:y1, x0:x1] = np.clip(np.rint(region), 0, peak).astype(frame.dtype)
        return out


@dataclass(frozen=True)
class WatermarkReading:
    """What :func:`read_watermark` found.

    Attributes:
        z: evidence for the mark over all frames read, in standard deviations of the decoy
            fields' scores; :data:`FOUND_Z` or more counts as found.
        frames: frames read.
        frame_z: each frame's own ``z`` (a single frame is weak evidence: 2-10 on a marked
            face after a lossy encode, about 0 ± 1 on anything else).
        faces: frames read inside faces (the rest were searched in face-sized windows).
        mirrored: the evidence is for the field flipped left to right (a mirrored copy).
        shift: with :func:`read_watermark_reframed` and a crop that stays put, how far the
            frame's centre sits from the marked frame's, in frame heights; else None.
        picture: ``(top, bottom, left, right)`` rows and columns of the picture inside
            black bars, when the mark was found there (a letterboxed copy); else None.
        searched: how :func:`read_watermark_reframed` found it: ``"offset"`` (one offset
            for all frames), ``"moving"`` (each frame's own, a window following the
            subject); ``""`` for :func:`read_watermark`.
    """

    z: float
    frames: int
    frame_z: tuple[float, ...]
    faces: int
    mirrored: bool = False
    shift: float | None = None
    picture: tuple[int, int, int, int] | None = None
    searched: str = ""

    @property
    def found(self) -> bool:
        return self.z >= (FOUND_Z_REFRAMED if self.searched else FOUND_Z)

    @property
    def marked_frames(self) -> int:
        """Frames whose own ``z`` is 3 or more."""
        return sum(z >= 3.0 for z in self.frame_z)


def _band(image: np.ndarray, cell: float) -> np.ndarray:
    """The band the field lives in (a difference of Gaussians around its blob size)."""
    return cv2.GaussianBlur(image, (0, 0), 0.35 * cell) - cv2.GaussianBlur(
        image, (0, 0), 1.2 * cell
    )


#: Rows of :func:`frame_scores`: the mark, the mark mirrored left to right, then the decoys.
MARK, MIRRORED, FIRST_DECOY = 0, 1, 2


@functools.lru_cache(maxsize=2)
def _keyed_bands(height: int, width: int) -> np.ndarray:
    """(2 + DECOYS, H, W) float32: the mark's field, its mirror image and the decoys',
    band-passed."""
    cell = height / CELLS_PER_HEIGHT
    mark = _band(field(height, width), cell)
    decoys = [_band(field(height, width, KEY + k), cell) for k in range(1, DECOYS + 1)]
    return np.stack([mark, np.ascontiguousarray(mark[:, ::-1]), *decoys])


def _luma(image: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB frame in code values of 255, float32."""
    scale = 255.0 / 65535.0 if image.dtype == np.uint16 else 1.0
    rgb = image.astype(np.float32) * scale
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _window_scores(signal: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """Each key's best face-sized window: the largest leave-one-out z over windows of 1/8,
    1/4 and 1/2 of the height, on a grid of a quarter window."""
    height, width = signal.shape
    n = len(bands)
    best = np.full(n, -np.inf)
    for share in (0.125, 0.25, 0.5):
        win = max(3, round(share * height))
        step = max(1, win // 4)
        sums = np.stack([
            cv2.boxFilter(signal * b, -1, (win, win), normalize=False,
                          borderType=cv2.BORDER_CONSTANT)[win // 2 : height - win // 2 : step,
                                                          win // 2 : width - win // 2 : step]
            for b in bands
        ]).reshape(n, -1).astype(np.float64)  # fmt: skip
        total, total_sq = sums.sum(0), (sums * sums).sum(0)
        # Each key is judged against the others only, so all keys are alike under no mark.
        mean = (total - sums) / (n - 1)
        var = np.maximum((total_sq - sums * sums) / (n - 1) - mean * mean, 1e-12)
        best = np.maximum(best, ((sums - mean) / np.sqrt(var)).max(1))
    return best


def _analysed(image: np.ndarray, region: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """A frame's band at the analysis height, its local contrast evened out, and its face
    region (float32) at that height, or None."""
    height, width = image.shape[:2]
    luma = _luma(image)
    if region is not None:
        region = region.astype(np.float32)
    if height > ANALYSIS_HEIGHT:
        size = (max(1, round(width * ANALYSIS_HEIGHT / height)), ANALYSIS_HEIGHT)
        luma = cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
        if region is not None:
            region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    cell = luma.shape[0] / CELLS_PER_HEIGHT
    band = _band(luma, cell)
    # Even out local contrast: an eye's edges would otherwise outweigh a cheek's worth of mark.
    band /= np.sqrt(cv2.GaussianBlur(band * band, (0, 0), 2.0 * cell)) + 0.5
    return band, region


def frame_scores(image: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Scores of the mark's field (row :data:`MARK`), its mirror image (:data:`MIRRORED`)
    and each decoy's (from :data:`FIRST_DECOY`) in one RGB frame.

    Args:
        image: RGB uint8 or uint16 (H, W, 3).
        region: where the faces are (bool or 0-1 float (H, W)); None searches windows.

    Returns:
        float64 (2 + DECOYS,): correlations inside ``region``, or best-window z scores.
    """
    band, region = _analysed(image, region)
    bands = _keyed_bands(*band.shape)
    if region is None:
        return _window_scores(band, bands)
    weighted = (band * region).ravel()
    return bands.reshape(len(bands), -1) @ weighted.astype(np.float32)


def read_watermark(frames: Iterable[tuple[np.ndarray, np.ndarray | None]]) -> WatermarkReading:
    """Look for the mark in frames, each given with where its faces are (or None).

    Each frame's scores are put in decoy standard deviations, summed over frames, and the
    sum is judged against the decoys' sums in the same way; the plain and the mirrored
    field are judged alike and the stronger reading is kept (two tries at :data:`FOUND_Z`
    leave a chance match as unlikely as ever).
    """
    totals: np.ndarray | None = None
    per_frame: list[np.ndarray] = []
    faces = 0
    for image, region in frames:
        scores = frame_scores(image, region)
        faces += region is not None
        decoys = scores[FIRST_DECOY:]
        spread = float(decoys.std()) or 1.0
        standard = (scores - decoys.mean()) / spread
        per_frame.append(standard[:FIRST_DECOY])
        totals = standard if totals is None else totals + standard
    if totals is None:
        return WatermarkReading(0.0, 0, (), 0)
    decoys = totals[FIRST_DECOY:]
    z = (totals[:FIRST_DECOY] - decoys.mean()) / (decoys.std() or 1.0)
    row = int(np.argmax(z))
    frame_z = tuple(round(float(v[row]), 2) for v in per_frame)
    return WatermarkReading(
        round(float(z[row]), 2), len(per_frame), frame_z, faces, row == MIRRORED
    )


#: Widest marked frame a re-framed copy is searched for, in heights (2.4:1 scope).
REFRAME_ASPECT = 2.4
#: ``z`` of the off-centre search at or above which the mark counts as found, with a margin
#: for the best of hundreds of offsets (unmarked test media: -0.3 to 3.8 over 61 crops;
#: marked: 12-32 at crf 28, 25-88 at crf 23, moving windows 6-31).
FOUND_Z_REFRAMED = 10.0


@functools.lru_cache(maxsize=1)  # about 100 MB of complex64 at the analysis height
def _wide_spectra(height: int, width: int, size: int) -> np.ndarray:
    """Row spectra (2 + DECOYS, H, size // 2 + 1) of the keyed bands of a ``width``-wide
    canvas (the widest marked frame a crop of this height may come from), for the shift
    search's cross-correlations."""
    bands = _keyed_bands(height, width)
    return np.fft.rfft(bands, n=size, axis=-1)


def shifted_frame_scores(image: np.ndarray, region: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Scores of every key (rows as :func:`frame_scores`) at every horizontal offset of the
    frame within a wider marked frame of the same height.

    Returns:
        ``(scores, height)``: float64 (2 + DECOYS, 2 * reach + 1), column ``reach + d`` the
        frame's centre ``d`` pixels right of the marked frame's (at the analysis ``height``;
        ``reach`` is half the width a frame loses when cropped from one
        :data:`REFRAME_ASPECT` heights wide).
    """
    band, weight = _analysed(image, region)
    if weight is None:
        weight = np.ones_like(band)
    h, w = band.shape
    canvas = max(w, int(np.ceil(REFRAME_ASPECT * h)))
    canvas += (canvas - w) % 2  # the same margin on both sides
    reach = (canvas - w) // 2
    size = 1 << int(np.ceil(np.log2(canvas + w)))
    spectra = _wide_spectra(h, canvas, size)
    signal = np.fft.rfft(band * weight, n=size, axis=-1)
    # corr[k, t] = sum over rows and x of signal(x) * canvas_k(x + t): the frame laid on the
    # canvas t pixels from its left edge; t = reach is the centred frame.
    corr = np.fft.irfft((np.conj(signal)[None] * spectra).sum(axis=1), n=size, axis=-1)
    return corr[:, : 2 * reach + 1].astype(np.float64), h


def _leave_one_out(scores: np.ndarray) -> np.ndarray:
    """``scores`` (keys, ...) in standard deviations of the decoys', each decoy against the
    other decoys only: standardised by a set that includes it, a decoy would look tamer than
    the mark, and the best of hundreds of offsets would make that a bias in the mark's
    favour."""
    decoys = scores[FIRST_DECOY:]
    n = len(decoys)
    total, total_sq = decoys.sum(0), (decoys * decoys).sum(0)
    out = np.empty_like(scores)
    mean = total / n
    spread = np.sqrt(np.maximum(total_sq / n - mean * mean, 1e-12))
    out[:FIRST_DECOY] = (scores[:FIRST_DECOY] - mean) / spread
    others = (total - decoys) / (n - 1)
    others_var = np.maximum((total_sq - decoys * decoys) / (n - 1) - others * others, 1e-12)
    out[FIRST_DECOY:] = (decoys - others) / np.sqrt(others_var)
    return out


def read_watermark_reframed(
    frames: Iterable[tuple[np.ndarray, np.ndarray | None]],
) -> WatermarkReading:
    """Look for the mark in a copy cropped off-centre to a narrower frame of the full height
    (a 16:9 video re-framed to 9:16 or 4:3 around its subject, a pan and scan): the field is
    searched at every horizontal offset of the centre, two ways: the evidence summed over
    frames at each offset (a crop that stays put), and each frame's best offset summed (a
    crop window that moves with the subject). The stronger reading is kept.

    The decoys go through the same searches (each judged against the others only), so ``z``
    is the best evidence against the best of fields never embedded. It costs a few times
    more than :func:`read_watermark`; meant for when that finds nothing. Frames of another
    size than the first are skipped.
    """
    totals: np.ndarray | None = None
    tracked: np.ndarray | None = None
    per_frame: list[np.ndarray] = []
    faces = 0
    shape: tuple[int, ...] | None = None
    height = 1
    for image, region in frames:
        shape = image.shape[:2] if shape is None else shape
        if image.shape[:2] != shape:
            continue
        scores, height = shifted_frame_scores(image, region)
        standard = _leave_one_out(scores)
        per_frame.append(standard[:FIRST_DECOY])
        totals = standard if totals is None else totals + standard
        best_here = standard.max(axis=1)
        tracked = best_here if tracked is None else tracked + best_here
        faces += region is not None
    if totals is None or tracked is None:
        return WatermarkReading(0.0, 0, (), 0)

    def judged(values: np.ndarray) -> np.ndarray:
        decoys = values[FIRST_DECOY:]
        return (values[:FIRST_DECOY] - decoys.mean()) / (decoys.std() or 1.0)

    still, moving = judged(totals.max(axis=1)), judged(tracked)
    if still.max() >= moving.max():
        row = int(np.argmax(still))
        column = int(np.argmax(totals[row]))
        frame_z = tuple(round(float(v[row, column]), 2) for v in per_frame)
        offset = (column - (totals.shape[1] - 1) // 2) / height
        return WatermarkReading(round(float(still[row]), 2), len(per_frame), frame_z, faces,
                                row == MIRRORED, round(offset, 4), searched="offset")  # fmt: skip
    row = int(np.argmax(moving))
    frame_z = tuple(round(float(v[row].max()), 2) for v in per_frame)
    return WatermarkReading(round(float(moving[row]), 2), len(per_frame), frame_z, faces,
                            row == MIRRORED, searched="moving")  # fmt: skip


#: Rows or columns count as a black bar at this luma or below, this flat across the frame.
BAR_LUMA, BAR_SPREAD = 24.0, 6.0


def black_bars(images: Iterable[np.ndarray]) -> tuple[int, int, int, int] | None:
    """``(top, bottom, left, right)`` of the picture inside black bars that every one of
    ``images`` (RGB frames of one size) has along its edges, or None when there are none.

    A copy made for another screen often puts the video in bars (a 16:9 video in a 9:16
    frame): the mark's field is laid out in the picture's height, not the frame's, so the
    picture must be read on its own, its edges found to the row (a codec smears a few rows
    of the picture into the bar: the edge is where the mean brightness jumps most). Bars
    thinner than 1 % of the frame are ignored."""
    dark_rows: np.ndarray | None = None
    dark_cols: np.ndarray | None = None
    row_means: np.ndarray | None = None
    col_means: np.ndarray | None = None
    shape: tuple[int, ...] | None = None
    for image in images:
        shape = image.shape[:2] if shape is None else shape
        if image.shape[:2] != shape:
            return None  # photos of other sizes: no bars they all share
        luma = _luma(image)
        rows = (luma.max(axis=1) <= BAR_LUMA) & (np.ptp(luma, axis=1) <= BAR_SPREAD)
        cols = (luma.max(axis=0) <= BAR_LUMA) & (np.ptp(luma, axis=0) <= BAR_SPREAD)
        dark_rows = rows if dark_rows is None else dark_rows & rows
        dark_cols = cols if dark_cols is None else dark_cols & cols
        rm, cm = luma.mean(axis=1), luma.mean(axis=0)
        row_means = rm if row_means is None else row_means + rm
        col_means = cm if col_means is None else col_means + cm
    if dark_rows is None or dark_cols is None or row_means is None or col_means is None:
        return None
    if dark_rows.all() or dark_cols.all():
        return None

    def inside(dark: np.ndarray, means: np.ndarray) -> tuple[int, int]:
        n = len(dark)
        least = max(2, n // 100)
        lo = int(np.argmin(dark))  # first row (or column) that is not bar
        hi = n - int(np.argmin(dark[::-1]))
        steps = np.diff(means)  # steps[i]: means[i + 1] - means[i]
        if lo >= least:
            window = range(max(1, lo - 4), min(n - 1, lo + 5))
            lo = max(window, key=lambda r: steps[r - 1])  # the picture starts at row r
        else:
            lo = 0
        if n - hi >= least:
            window = range(max(1, hi - 4), min(n - 1, hi + 5))
            hi = max(window, key=lambda r: -steps[r - 1])  # the bar starts at row r
        else:
            hi = n
        return lo, hi

    top, bottom = inside(dark_rows, row_means)
    left, right = inside(dark_cols, col_means)
    if (top, bottom, left, right) == (0, len(dark_rows), 0, len(dark_cols)) or bottom <= top:
        return None
    return top, bottom, left, right
