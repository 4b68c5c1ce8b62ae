"""A contact sheet for tuning the blend: one frame converted with each value of a setting.

``run_tune(TuneConfig) -> TuneResult``: the frame as it is, then converted with every colour
mode (or mask mode, or the given values of erode, blur, sharpen, grain...), labelled and
tiled into one PNG that carries the provenance tags like any converted frame. DeepFaceLab's
merger shows the same choices interactively; here they sit side by side.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from faceswap.convert.colour import COLOUR_MODES
from faceswap.convert.masks import MASK_MODES
from faceswap.convert.pipeline import BLEND_KEYS, ConvertConfig, run_convert
from faceswap.errors import FaceswapError

#: Columns of the sheet.
COLUMNS = 4
#: What a sheet can vary: the blend settings, and the swap's morph (each tile is its own
#: convert, so a setting of the inference can change between tiles too).
TUNE_KEYS = (*BLEND_KEYS, "morph")


@dataclass(frozen=True)
class TuneConfig:
    """One contact sheet.

    Attributes:
        convert: the convert settings to start from (its ``output`` is not used).
        frame: the frame to convert (0-based, as ``--frame-ranges`` counts).
        vary: the setting that changes from tile to tile, one of :data:`TUNE_KEYS`.
        values: its values; empty: every colour mode, or every mask mode the model and
            ``mask_model`` allow (the other settings need values).
        output: the PNG to write.
    """

    convert: ConvertConfig
    frame: int
    vary: str
    output: Path
    values: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "output", Path(self.output))
        if self.vary not in TUNE_KEYS:
            raise FaceswapError(f"--vary: choose from {', '.join(TUNE_KEYS)}; got {self.vary!r}")
        if self.frame < 0:
            raise FaceswapError(f"--frame must be >= 0, got {self.frame}")
        if not self.values and self.vary not in ("colour", "mask"):
            raise FaceswapError(f"--vary {self.vary} needs --values (e.g. 0,5,10)")
        if self.output.suffix.lower() != ".png":
            raise FaceswapError(f"{self.output}: the sheet is a PNG; end the name with .png")


@dataclass(frozen=True)
class TuneResult:
    """The sheet written and the values it shows, in tile order after the input."""

    output: Path
    values: tuple[Any, ...]


def _default_values(cfg: TuneConfig) -> tuple[Any, ...]:
    from faceswap.train.checkpoint import read_model_json

    if cfg.vary == "colour":
        return tuple(COLOUR_MODES.names())
    learned = read_model_json(cfg.convert.model_dir)[0].learned_mask
    return tuple(
        name
        for name in MASK_MODES.names()
        if (learned or not MASK_MODES.get(name).needs_learned)
        and (cfg.convert.mask_model is not None or not MASK_MODES.get(name).needs_segment)
    )


def _labelled(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` (RGB uint8) with ``text`` on a dark band above it."""
    band = max(18, image.shape[0] // 16)
    out = np.zeros((image.shape[0] + band, image.shape[1], 3), np.uint8)
    out[band:] = image
    scale = band / 30.0
    cv2.putText(out, text, (4, int(band * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), max(1, band // 18), cv2.LINE_AA)  # fmt: skip
    return out


def _check_frame_has_a_face(cfg: TuneConfig) -> None:
    """Refuse, before any convert, a frame the alignments file holds without a face, and
    name the nearest frames that have one (a sheet of that frame would show it unchanged)."""
    if cfg.convert.alignments is None:
        return
    from faceswap.faces.alignments import load_alignments

    frames = load_alignments(cfg.convert.alignments).by_index()
    record = frames.get(cfg.frame)
    if record is None or record.faces:  # with faces, or detected on the fly (a gap)
        return
    with_face = [i for i, fr in frames.items() if fr.faces]
    before = max((i for i in with_face if i < cfg.frame), default=None)
    after = min((i for i in with_face if i > cfg.frame), default=None)
    nearest = " or ".join(str(i) for i in (before, after) if i is not None)
    raise FaceswapError(
        f"{cfg.convert.alignments}: frame {cfg.frame} has no face; pick a --frame with one"
        + (f" (nearest: {nearest})" if nearest else "")
    )


def run_tune(cfg: TuneConfig) -> TuneResult:
    """Convert ``cfg.frame`` once per value and write the labelled tiles as one PNG.

    Raises:
        FaceswapError: as :func:`run_convert` (a missing model, a mode the model cannot
            do, a frame past the end), or a bad ``vary``/``values``.
    """
    from faceswap.io.files import ensure_writable_dir
    from faceswap.io.images import as_8bit, read_image, write_image
    from faceswap.io.video import open_source
    from faceswap.provenance import provenance_tags

    values = cfg.values or _default_values(cfg)
    ensure_writable_dir(cfg.output.parent)
    source = open_source(cfg.convert.input)
    if cfg.frame >= source.frame_count:
        raise FaceswapError(
            f"{cfg.convert.input}: --frame {cfg.frame} is past its {source.frame_count} "
            f"frames (0-{source.frame_count - 1})"
        )
    _check_frame_has_a_face(cfg)
    frames = source.iter_frames(start=cfg.frame)
    try:
        original = next(iter(frames)).image
    finally:
        frames.close()  # type: ignore[attr-defined]  # stop the decoder now
    tiles = [_labelled(as_8bit(original), f"frame {cfg.frame}")]
    tags: dict[str, str] = {}
    work = Path(tempfile.mkdtemp(prefix=".faceswap-tune-", dir=cfg.output.parent))
    try:
        for i, value in enumerate(values):
            run = dataclasses.replace(
                cfg.convert,
                output=work / f"v{i}",
                matte=None,
                frame_ranges=((cfg.frame, cfg.frame),),
                ranges_only=True,
                resume=False,
                progress=False,
                blend_ranges=(),
                **{cfg.vary: value},
            )
            result = run_convert(run)
            if result.faces_swapped == 0:  # found by the detector, or its crops deleted
                raise FaceswapError(
                    f"{cfg.convert.input}: no face to swap in frame {cfg.frame}; pick a "
                    "--frame with a face"
                )
            tags = provenance_tags(result.model_sha256)
            frame_file = next(iter(sorted(result.output.iterdir())))
            tiles.append(_labelled(as_8bit(read_image(frame_file)), f"{cfg.vary} {value}"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // COLUMNS)
    sheet = np.zeros((rows * h, min(COLUMNS, len(tiles)) * w, 3), np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, COLUMNS)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile
    write_image(cfg.output, sheet, text=tags)
    return TuneResult(output=cfg.output, values=tuple(values))
