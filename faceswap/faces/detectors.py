"""Detector backends (stub: replaced by the extract stage's implementation)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackendStatus:
    name: str
    usable: bool
    reason: str


def backend_status() -> list[BackendStatus]:
    return []
