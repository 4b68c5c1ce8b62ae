"""Named registries for swappable parts (detectors, presets, losses, colour and mask modes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from faceswap.errors import FaceswapError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → object table whose lookups fail with the list of valid names.

    Example:
        >>> COLOUR = Registry[Callable]("colour mode")
        >>> @COLOUR.register("none")
        ... def no_colour(src, dst, mask): return src
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = obj

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise FaceswapError(
                f"unknown {self.kind} '{name}'; choose from {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
