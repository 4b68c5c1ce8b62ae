"""The generated test media: decodes to the frame count asked, ground truth is consistent."""

from __future__ import annotations

import subprocess

import numpy as np

from faceswap.io.ffmpeg_bin import find_ffmpeg
from tests.media import ClipInfo, ImageFolderInfo


def _decoded_frames(clip: ClipInfo) -> int:
    # Counted with ffmpeg directly, independent of faceswap.io.
    out = subprocess.run(
        [
            *(find_ffmpeg(), "-v", "error", "-i", str(clip.path), "-map", "0:v:0"),
            *("-fps_mode", "passthrough", "-f", "framecrc", "-"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(1 for line in out.splitlines() if line and not line.startswith("#"))


def test_clip_decodes_to_its_frame_count(clip_one_face: ClipInfo) -> None:
    assert _decoded_frames(clip_one_face) == clip_one_face.frame_count == 48


def test_clip_faces_move_scale_and_stay_large(clip_one_face: ClipInfo) -> None:
    heights = [f[0].height for f in clip_one_face.faces]
    centers = np.array([f[0].center for f in clip_one_face.faces])
    assert min(heights) >= 88
    assert max(heights) / min(heights) > 1.5
    assert np.ptp(centers[:, 0]) > 50
    for faces in clip_one_face.faces:
        x0, y0, x1, y1 = faces[0].box
        assert 0 <= x0 < x1 <= clip_one_face.width and 0 <= y0 < y1 <= clip_one_face.height


def test_two_faces_side_by_side(clip_two_faces: ClipInfo) -> None:
    assert _decoded_frames(clip_two_faces) == clip_two_faces.frame_count
    for left, right in clip_two_faces.faces:
        assert left.box[2] < right.box[0]
        assert min(left.height, right.height) >= 88


def test_blank_frames_have_no_face_and_show_background(clip_with_blank_frames: ClipInfo) -> None:
    scene = clip_with_blank_frames.scene
    assert clip_with_blank_frames.faces[0] == ()
    assert clip_with_blank_frames.faces[5] != ()
    assert np.array_equal(scene.frame(0), scene.frame(13))
    assert not np.array_equal(scene.frame(0), scene.frame(5))


def test_image_folder(image_folder_faces: ImageFolderInfo) -> None:
    assert len(image_folder_faces.files) == 12
    assert all(p.is_file() for p in image_folder_faces.files)
    assert image_folder_faces.files[0].name == "frame_000000.png"
