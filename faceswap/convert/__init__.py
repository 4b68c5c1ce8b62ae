"""Convert: swap faces frame by frame, blend them back, re-encode with the original audio.

Public API (see docs/interfaces.md)::

    from faceswap.convert import ConvertConfig, run_convert
    result = run_convert(ConvertConfig(input=Path("a.mp4"), model_dir=Path("model"),
                                       output=Path("out.mp4")))

Importing this package does not import torch or ffmpeg helpers; :func:`run_convert` does.
"""

from faceswap.convert.colour import COLOUR_MODES, ColourMode, transfer_colour
from faceswap.convert.masks import MASK_MODES, MaskMode, build_mask, refine_mask
from faceswap.convert.pipeline import ConvertConfig, ConvertResult, run_convert

__all__ = [
    "COLOUR_MODES",
    "MASK_MODES",
    "ColourMode",
    "ConvertConfig",
    "ConvertResult",
    "MaskMode",
    "build_mask",
    "refine_mask",
    "run_convert",
    "transfer_colour",
]
