"""Provenance tags and the sidecar manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from faceswap import __version__
from faceswap.errors import FaceswapError
from faceswap.provenance import (
    file_sha256,
    manifest_path,
    provenance_tags,
    read_manifest,
    write_manifest,
)


def test_tags_mark_synthetic_and_name_the_model() -> None:
    tags = provenance_tags("ab" * 32, preset="tiny")
    assert tags["synthetic"] == "1"
    assert tags["generator"] == f"faceswap {__version__}"
    assert tags["model_sha256"] == "ab" * 32
    assert "Synthetic" in tags["comment"] and "tiny" in tags["comment"]
    assert all(isinstance(v, str) for v in tags.values())


def test_file_sha256(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000
    (tmp_path / "x.bin").write_bytes(data)
    assert file_sha256(tmp_path / "x.bin", chunk=1000) == hashlib.sha256(data).hexdigest()
    with pytest.raises(FaceswapError, match="cannot read"):
        file_sha256(tmp_path / "missing.bin")


def test_manifest_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "in.mp4"
    src.write_bytes(b"not really a video")
    out = tmp_path / "out.mp4"
    path = write_manifest(
        out,
        model_sha256="cd" * 32,
        preset="tiny",
        input_path=src,
        settings={"colour": "rct", "mask": "hull"},
        frames_total=10,
        frames_swapped=7,
        faces_swapped=9,
    )
    assert path == manifest_path(out) == tmp_path / "out.mp4.json"
    data = json.loads(path.read_text())
    assert data == read_manifest(out)
    assert data["synthetic"] is True and data["version"] == __version__
    assert data["input"] == {"name": "in.mp4", "sha256": file_sha256(src)}
    assert data["model"] == {"sha256": "cd" * 32, "preset": "tiny"}
    assert data["frames"] == {"total": 10, "swapped": 7}
    assert data["settings"]["colour"] == "rct"
    # No temp files left behind by the atomic write.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4.json"]


def test_missing_and_corrupt_manifest(tmp_path: Path) -> None:
    assert read_manifest(tmp_path / "a.mp4") is None
    (tmp_path / "a.mp4.json").write_text("{oops")
    with pytest.raises(FaceswapError, match="corrupt"):
        read_manifest(tmp_path / "a.mp4")
