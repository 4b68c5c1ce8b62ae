"""faceswap: a face-swap autoencoder pipeline (extract, align, train, convert, blend, encode)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("faceswap")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.1.0"

__all__ = ["__version__"]
