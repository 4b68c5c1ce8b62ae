"""Image files: RGB in memory, atomic writes, natural order, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from faceswap.errors import FaceswapError
from faceswap.io.images import list_images, natural_key, read_image, write_image
from tests.media import face_photo


def test_write_then_read_png_is_lossless_and_rgb(tmp_path: Path) -> None:
    rgb = np.ascontiguousarray(face_photo("astronaut")[::4, ::4])
    path = write_image(tmp_path / "a.png", rgb)
    assert np.array_equal(read_image(path), rgb)
    # On disk it is a normal BGR PNG: cv2 (BGR) sees the channels swapped.
    assert np.array_equal(cv2.imread(str(path))[..., ::-1], rgb)
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_jpeg_round_trip_is_close(tmp_path: Path) -> None:
    rgb = np.ascontiguousarray(face_photo("grace_hopper")[::4, ::4])
    back = read_image(write_image(tmp_path / "g.jpg", rgb, jpeg_quality=95))
    assert back.shape == rgb.shape
    assert np.abs(back.astype(int) - rgb.astype(int)).mean() < 4


def test_grey_and_alpha_become_rgb(tmp_path: Path) -> None:
    grey = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 3).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    out = read_image(tmp_path / "g.png")
    assert out.shape == (8, 8, 3) and np.array_equal(out[..., 0], grey)
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 2] = 200  # red in BGR order
    bgra[..., 3] = 255
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    assert read_image(tmp_path / "a.png")[0, 0].tolist() == [200, 0, 0]


def test_corrupt_empty_and_missing_images(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG but not really")
    (tmp_path / "empty.jpg").write_bytes(b"")
    for name in ("bad.png", "empty.jpg"):
        with pytest.raises(FaceswapError, match=rf"{name}: not a readable image"):
            read_image(tmp_path / name)
    with pytest.raises(FaceswapError, match="no such image"):
        read_image(tmp_path / "missing.png")


def test_list_images_natural_order_skips_hidden_and_others(tmp_path: Path) -> None:
    for name in ("f10.png", "f2.PNG", "f1.jpg", ".f0.png", "notes.txt", "F3.jpeg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["f1.jpg", "f2.PNG", "F3.jpeg", "f10.png"]
    with pytest.raises(FaceswapError, match="no such folder"):
        list_images(tmp_path / "nope")


def test_natural_key() -> None:
    names = ["frame_10", "frame_9", "frame_100", "Frame_1"]
    assert sorted(names, key=natural_key) == ["Frame_1", "frame_9", "frame_10", "frame_100"]


def test_write_into_a_file_path_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("file")
    with pytest.raises(FaceswapError, match="not a folder"):
        write_image(tmp_path / "x" / "a.png", np.zeros((4, 4, 3), np.uint8))


def test_png_text_chunks_round_trip_and_leave_the_pixels(tmp_path: Path) -> None:
    from faceswap.io.images import encode_image, png_text, png_with_text

    rgb = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    tags = {"synthetic": "1", "comment": "Synthetic media: faces swapped"}
    path = write_image(tmp_path / "f.png", rgb, text=tags)
    data = path.read_bytes()
    assert png_text(data) == tags
    assert png_text(encode_image(rgb, ".png")) == {}
    np.testing.assert_array_equal(read_image(path), rgb)
    # Every chunk's CRC is right (a strict reader drops chunks whose CRC is not).
    import struct
    import zlib

    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(data[pos + 4 : pos + 8 + length]) == crc
        pos += 12 + length
    assert png_text(png_with_text(data, {"more": "x"})) == {**tags, "more": "x"}
    with pytest.raises(ValueError, match="not a PNG"):
        png_text(b"GIF89a")
    webp = write_image(tmp_path / "f.webp", rgb, text=tags)  # other formats ignore text
    assert webp.read_bytes()[:4] == b"RIFF"


def test_tiff_description_round_trips_and_leaves_the_pixels(tmp_path: Path) -> None:
    from faceswap.io.images import encode_image, tiff_description, tiff_with_description

    rgb = np.random.default_rng(1).integers(0, 256, (13, 21, 3), dtype=np.uint8)
    tags = {"synthetic": "1", "comment": "Synthetic media"}
    path = write_image(tmp_path / "f.tif", rgb, text=tags)
    data = path.read_bytes()
    assert tiff_description(data) == '{"comment": "Synthetic media", "synthetic": "1"}'
    np.testing.assert_array_equal(read_image(path), rgb)
    plain = encode_image(rgb, ".tif")
    assert tiff_description(plain) is None
    again = tiff_with_description(data, "other")  # replaces, does not add a second one
    assert tiff_description(again) == "other"
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(again, np.uint8), 1)[..., ::-1], rgb)
    with pytest.raises(ValueError, match="not a"):
        tiff_description(b"\x89PNG\r\n\x1a\n")


def test_jpeg_comment_round_trips_and_leaves_the_pixels(tmp_path: Path) -> None:
    from faceswap.io.images import encode_image, jpeg_comments, jpeg_with_comment

    rgb = np.random.default_rng(2).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    tags = {"synthetic": "1", "comment": "Synthetic média"}
    path = write_image(tmp_path / "f.jpg", rgb, text=tags)
    data = path.read_bytes()
    (comment,) = jpeg_comments(data)
    assert json.loads(comment) == tags
    plain = encode_image(rgb, ".jpg")
    assert jpeg_comments(plain) == []
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), 1),
                                  cv2.imdecode(np.frombuffer(plain, np.uint8), 1))  # fmt: skip
    # After JFIF's APP0, which has to stay the first segment.
    assert data[2:4] == plain[2:4] == b"\xff\xe0"
    assert jpeg_comments(jpeg_with_comment(data, "more")) == ["more", *jpeg_comments(data)]
    with pytest.raises(ValueError, match="not a JPEG"):
        jpeg_comments(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match="at most 65533"):
        jpeg_with_comment(plain, "x" * 70000)
