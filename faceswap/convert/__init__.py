"""Convert: swap faces frame by frame, blend them back, re-encode with the original audio.

Public API (see docs/interfaces.md)::

    from faceswap.convert import ConvertConfig, run_convert
    result = run_convert(ConvertConfig(input=Path("a.mp4"), model_dir=Path("model"),
                                       output=Path("out.mp4")))
"""

from faceswap.convert.colour import COLOUR_MODES, transfer_colour
from faceswap.convert.masks import MASK_MODES, build_mask

__all__ = ["COLOUR_MODES", "MASK_MODES", "build_mask", "transfer_colour"]
