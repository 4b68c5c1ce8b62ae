"""Face-swap networks: model configs and presets, the autoencoders, discriminator, losses.

Public API (see docs/interfaces.md)::

    from faceswap.nets import load_preset, build_model
    cfg = load_preset("original")          # or a path to your own YAML
    model = build_model(cfg)                # FaceSwapModel (nn.Module), CPU, train mode
    out_a, out_b = model(x_a, x_b)          # DecoderOutput(rgb, mask) per side
    swapped = model.swap(x_a, "a2b")        # faces of A drawn as B
"""

from faceswap.nets.config import (
    ARCHS,
    PRESETS,
    ModelConfig,
    config_fingerprint,
    load_preset,
    models_dir,
    scaled,
)
from faceswap.nets.model import (
    ARCH_FAMILIES,
    DecoderOutput,
    DFModel,
    FaceSwapModel,
    LIAEModel,
    build_model,
)

__all__ = [
    "ARCHS",
    "ARCH_FAMILIES",
    "PRESETS",
    "DFModel",
    "DecoderOutput",
    "FaceSwapModel",
    "LIAEModel",
    "ModelConfig",
    "build_model",
    "config_fingerprint",
    "load_preset",
    "models_dir",
    "scaled",
]
