"""Synthetic test media with known ground truth: clips and image folders with real faces.

Every test that needs a video or a folder of frames gets it from here, so no media is ever
committed. The faces come from two public-domain photos that ship inside installed packages:
``skimage.data.astronaut()`` (Eileen Collins, NASA) and matplotlib's ``grace_hopper.jpg``.

Each photo's face box (dlib HOG, highest score) and 68 landmarks (dlib's shape predictor from
``face_recognition_models``) are measured once on the still photo and cached. A clip pastes a
crop around that face onto a seeded background with a known per-frame similarity transform
(scale about 0.7x-1.3x, smooth motion) and a per-frame gain/bias (brightness/contrast), so the
ground-truth box and landmarks of every face in every frame are the photo's, transformed.

Clips are encoded by piping the rendered frames into the ffmpeg binary directly (never with
``faceswap.io``, the code under test). Audio is a 440 Hz sine (AAC in mp4/mov/mkv, Opus in
webm), gated into 50 ms beeps every 0.5 s *of video time* (0.0, 0.5, 1.0... after the first
frame), that can start ``audio_offset`` seconds after the video (or before it, when negative):
an output is in sync when its beeps still start on multiples of 0.5 s of its video clock
(:func:`beep_onsets` measures them).

API
---
``face_photo(name) -> RGB uint8``
    ``name`` in :data:`PEOPLE` (``"astronaut"``, ``"grace_hopper"``).
``photo_face(name) -> PhotoFace``
    The face box ``(4,) float32 x0,y0,x1,y1`` and landmarks ``(68,2) float32`` in the photo.
``Scene(width, height, frames, people, blank_frames, seed)``
    ``.frame(i) -> RGB uint8 HxWx3`` exactly as fed to the encoder; ``.faces(i) ->
    tuple[FaceTruth, ...]`` (empty on blank frames), one per person, left to right.
``make_clip(path, *, frames=48, width=640, height=360, fps=Fraction(25), people=("astronaut",),
audio=True, audio_offset=0.0, blank_frames=(), seed=0, codec="libx264", crf=20, rotation=0,
gop=None) -> ClipInfo``
    Writes the clip; ``ClipInfo.faces[i]`` is the ground truth of frame ``i`` in *encoded*
    pixels (before any display rotation). ``rotation`` adds display-matrix side data
    (counter-clockwise degrees, as ``ffmpeg -display_rotation``) without re-encoding.
``make_image_folder(path, n, *, ext="png", name_format="frame_{index:06d}", ...) ->
ImageFolderInfo``
    The same content written as image files; ``files[i]`` shows ``faces[i]``.

Box convention: dlib HOG boxes are tight (brows to chin); other detectors' boxes differ, so
compare with a tolerance (IoU or centre distance relative to box size), not exact values.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from faceswap.io.ffmpeg_bin import find_ffmpeg

PEOPLE: tuple[str, ...] = ("astronaut", "grace_hopper")

# Audio: BEEP_LENGTH-second beeps of a BEEP_HZ sine every BEEP_PERIOD seconds of video time.
BEEP_HZ = 440
BEEP_PERIOD = 0.5
BEEP_LENGTH = 0.05

# Side of the square crop pasted into frames, as a multiple of the face box height: enough
# context (hair, chin, some background) for detectors and the aligner's coverage.
_CROP_MARGIN = 1.9
# Face box height in frame pixels at scale 1.0, and the scale range, for one or two people.
# dlib's HOG finds faces down to about 80 px without upsampling, so the smallest face is ~90 px.
_ONE_PERSON = (128.0, 0.72, 1.28)
_TWO_PEOPLE = (105.0, 0.88, 1.15)


@dataclass(frozen=True)
class PhotoFace:
    """A face measured on a still photo: ``box`` (4,) x0,y0,x1,y1 and ``landmarks`` (68,2)."""

    box: np.ndarray
    landmarks: np.ndarray


@dataclass(frozen=True)
class FaceTruth:
    """Ground truth for one face in one frame, in frame pixels (float32).

    Attributes:
        person: Photo name, one of :data:`PEOPLE`.
        box: (4,) x0, y0, x1, y1 (dlib HOG convention, tight brows-to-chin).
        landmarks: (68, 2) x, y in iBUG-68 order.
        scale: Photo-to-frame scale of this face in this frame.
    """

    person: str
    box: np.ndarray
    landmarks: np.ndarray
    scale: float

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def center(self) -> np.ndarray:
        return np.array(
            [(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2], np.float32
        )


@functools.cache
def face_photo(name: str) -> np.ndarray:
    """The public-domain photo ``name`` as RGB uint8 HxWx3 (a read-only cached array)."""
    if name == "astronaut":
        import skimage.data

        image = np.ascontiguousarray(skimage.data.astronaut()[..., :3])
    elif name == "grace_hopper":
        import matplotlib.cbook

        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(path)
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    else:
        raise ValueError(f"unknown person {name!r}; choose from {', '.join(PEOPLE)}")
    image.setflags(write=False)
    return image


def _shape_predictor_path() -> Path:
    # face_recognition_models imports pkg_resources (gone from new setuptools); find its
    # data folder without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("face_recognition_models is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder / "models" / "shape_predictor_68_face_landmarks.dat"


@functools.cache
def photo_face(name: str) -> PhotoFace:
    """The face box and 68 landmarks of photo ``name``, measured once with dlib."""
    import dlib

    image = face_photo(name)
    rects, scores, _ = dlib.get_frontal_face_detector().run(image, 1, 0)
    if not rects:
        raise RuntimeError(f"dlib found no face in the {name} photo")
    rect = rects[int(np.argmax(scores))]
    predictor = dlib.shape_predictor(str(_shape_predictor_path()))
    shape = predictor(image, rect)
    landmarks = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
    box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float32)
    return PhotoFace(box=box, landmarks=landmarks)


@functools.cache
def _face_crop(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A square crop around the face (clipped to the photo) and its top-left in the photo."""
    image = face_photo(name)
    box = photo_face(name).box
    side = (box[3] - box[1]) * _CROP_MARGIN
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    h, w = image.shape[:2]
    x0 = int(max(0, round(cx - side / 2)))
    y0 = int(max(0, round(cy - side / 2 - 0.08 * side)))  # a little more forehead than chin
    x1 = int(min(w, round(cx + side / 2)))
    y1 = int(min(h, y0 + round(side)))
    return image[y0:y1, x0:x1], np.array([x0, y0], np.float32)


@functools.cache
def _background(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Smooth coloured blobs over a gradient: textured enough to look like a scene, with no
    # face-like structure for a detector to find.
    small = rng.integers(40, 200, size=(5, 8, 3), dtype=np.uint8)
    blobs = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    ramp = np.linspace(-20, 20, width, dtype=np.float32)[None, :, None]
    grain = rng.normal(0, 4, size=(height, width, 1)).astype(np.float32)
    bg = np.clip(blobs + ramp + grain, 0, 255).astype(np.uint8)
    bg.setflags(write=False)
    return bg


@functools.cache
def _feather(h: int, w: int, ramp: int = 6) -> np.ndarray:
    ys = np.minimum(np.arange(h), np.arange(h)[::-1])[:, None]
    xs = np.minimum(np.arange(w), np.arange(w)[None, ::-1])
    edge = np.minimum(ys, xs).astype(np.float32)
    return np.clip((edge + 0.5) / ramp, 0, 1)[..., None]


@dataclass(frozen=True)
class Scene:
    """The deterministic content of a clip: who is where, how large and how lit, per frame.

    Attributes:
        width, height: Frame size in pixels.
        frames: Number of frames.
        people: Photo names, placed left to right (one or two).
        blank_frames: Indices of frames showing only the background.
        seed: Seeds the background and the motion phases.
        roll: Degrees clockwise each face turns in the picture per frame, about the middle
            of its pasted crop (a head tilting over, a camera rolling).
    """

    width: int = 640
    height: int = 360
    frames: int = 48
    people: tuple[str, ...] = ("astronaut",)
    blank_frames: tuple[int, ...] = ()
    seed: int = 0
    roll: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= len(self.people) <= 2:
            raise ValueError("a scene holds one or two people")
        for name in self.people:
            if name not in PEOPLE:
                raise ValueError(f"unknown person {name!r}; choose from {', '.join(PEOPLE)}")

    def _params(self, i: int, slot: int) -> tuple[float, float, float, float, float]:
        """Scale, centre x, centre y of the face box, gain and bias of person ``slot``."""
        base, lo, hi = _ONE_PERSON if len(self.people) == 1 else _TWO_PEOPLE
        rng = np.random.default_rng([self.seed, slot])
        phase = rng.uniform(0, 2 * math.pi, size=5)
        # One full cycle of scale and lighting per clip (at least 24 frames) so short clips
        # still cover the whole range; motion at incommensurate rates.
        t = i / max(self.frames, 24)
        mid, amp = (lo + hi) / 2, (hi - lo) / 2
        face_h = photo_face(self.people[slot]).box
        face_h = float(face_h[3] - face_h[1])
        scale = base * (mid + amp * math.sin(2 * math.pi * t + phase[0])) / face_h
        gain = 1.0 + 0.25 * math.sin(2 * math.pi * t + phase[1])
        bias = 30.0 * math.sin(2 * math.pi * 1.3 * t + phase[2])
        slot_w = self.width / len(self.people)
        crop_h, crop_w = _face_crop(self.people[slot])[0].shape[:2]
        # Small frames (tests at 320x192...) shrink the face so the crop still fits.
        scale = min(scale, (self.height - 6) / crop_h, (slot_w - 6) / crop_w)
        half_w, half_h = crop_w * scale / 2, crop_h * scale / 2
        # Keep the whole pasted crop inside this person's slot of the frame.
        x_lo, x_hi = slot * slot_w + half_w + 2, (slot + 1) * slot_w - half_w - 2
        y_lo, y_hi = half_h + 2, self.height - half_h - 2
        fx = 0.5 + 0.5 * math.sin(2 * math.pi * 0.9 * t + phase[3])
        fy = 0.5 + 0.5 * math.sin(2 * math.pi * 1.7 * t + phase[4])
        cx = x_lo + fx * max(x_hi - x_lo, 0) if x_hi > x_lo else (slot + 0.5) * slot_w
        cy = y_lo + fy * max(y_hi - y_lo, 0) if y_hi > y_lo else self.height / 2
        return scale, cx, cy, gain, bias

    def _placement(self, i: int, slot: int) -> tuple[float, np.ndarray, float, float]:
        """Scale, top-left of the scaled crop in the frame (integer pixels), gain, bias."""
        scale, cx, cy, gain, bias = self._params(i, slot)
        crop_h, crop_w = _face_crop(self.people[slot])[0].shape[:2]
        top_left = np.array(
            [round(cx - crop_w * scale / 2), round(cy - crop_h * scale / 2)], np.float32
        )
        return scale, top_left, gain, bias

    def _turn(self, i: int, slot: int) -> np.ndarray:
        """The 2x3 affine turning person ``slot``'s scaled crop by frame ``i``'s roll."""
        crop_h, crop_w = _face_crop(self.people[slot])[0].shape[:2]
        scale = self._placement(i, slot)[0]
        h, w = round(crop_h * scale), round(crop_w * scale)
        # cv2 turns anticlockwise for positive angles; roll is clockwise.
        return cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -self.roll * i, 1.0)

    def faces(self, i: int) -> tuple[FaceTruth, ...]:
        """Ground truth of frame ``i``: one :class:`FaceTruth` per person, left to right."""
        if i in self.blank_frames:
            return ()
        out = []
        for slot, name in enumerate(self.people):
            scale, top_left, _, _ = self._placement(i, slot)
            origin = _face_crop(name)[1]
            face = photo_face(name)
            # Pixel centres map as (p + 0.5) * s - 0.5 under cv2.resize's half-pixel model.
            pts = (face.landmarks - origin + 0.5) * scale - 0.5 + top_left
            box = ((face.box.reshape(2, 2) - origin + 0.5) * scale - 0.5 + top_left).ravel()
            if self.roll:
                turn = self._turn(i, slot)
                pts = (pts - top_left) @ turn[:, :2].T + turn[:, 2] + top_left
                middle = (box[:2] + box[2:]) / 2 - top_left
                middle = middle @ turn[:, :2].T + turn[:, 2] + top_left
                half = (box[2:] - box[:2]) / 2
                box = np.concatenate([middle - half, middle + half])
            out.append(
                FaceTruth(
                    person=name,
                    box=box.astype(np.float32),
                    landmarks=pts.astype(np.float32),
                    scale=float(scale),
                )
            )
        return tuple(out)

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as RGB uint8 HxWx3, exactly as fed to the encoder."""
        canvas = _background(self.width, self.height, self.seed).astype(np.float32)
        if i not in self.blank_frames:
            for slot, name in enumerate(self.people):
                scale, top_left, gain, bias = self._placement(i, slot)
                crop = _face_crop(name)[0]
                h = round(crop.shape[0] * scale)
                w = round(crop.shape[1] * scale)
                resized = cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA)
                lit = (resized.astype(np.float32) - 128.0) * gain + 128.0 + bias
                x0, y0 = int(top_left[0]), int(top_left[1])
                region = canvas[y0 : y0 + h, x0 : x0 + w]
                alpha = _feather(h, w)
                if self.roll:
                    turn = self._turn(i, slot)
                    lit = cv2.warpAffine(lit, turn, (w, h), borderMode=cv2.BORDER_REPLICATE)
                    alpha = cv2.warpAffine(alpha, turn, (w, h))[..., None]
                region[:] = alpha * np.clip(lit, 0, 255) + (1 - alpha) * region
        return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)

    def iter_frames(self) -> Iterator[np.ndarray]:
        for i in range(self.frames):
            yield self.frame(i)


@dataclass(frozen=True)
class ClipInfo:
    """What :func:`make_clip` wrote.

    Attributes:
        path: The clip file.
        frame_count: Frames encoded.
        fps: Exact frame rate.
        width, height: Encoded size (before display rotation).
        duration: ``frame_count / fps`` in seconds.
        scene: The content; ``scene.frame(i)`` is the frame before compression.
        faces: Per frame, the ground truth of each face (empty tuple on blank frames).
        has_audio: Whether an audio stream was written.
        audio_offset: Audio start minus video start, seconds.
        rotation: Display rotation written as side data (counter-clockwise degrees).
    """

    path: Path
    frame_count: int
    fps: Fraction
    width: int
    height: int
    duration: float
    scene: Scene
    faces: tuple[tuple[FaceTruth, ...], ...]
    has_audio: bool
    audio_offset: float
    rotation: int = 0

    @property
    def blank_frames(self) -> tuple[int, ...]:
        return self.scene.blank_frames

    @property
    def people(self) -> tuple[str, ...]:
        return self.scene.people


@dataclass(frozen=True)
class ImageFolderInfo:
    """What :func:`make_image_folder` wrote: ``files[i]`` shows ``faces[i]``."""

    path: Path
    files: tuple[Path, ...]
    scene: Scene
    faces: tuple[tuple[FaceTruth, ...], ...] = field(default=())


def _audio_codec(suffix: str) -> str:
    return {".webm": "libopus", ".avi": "libmp3lame"}.get(suffix.lower(), "aac")


def _run(args: Sequence[str], stdin_frames: Iterator[np.ndarray] | None = None) -> None:
    proc = subprocess.Popen(
        list(args),
        stdin=subprocess.PIPE if stdin_frames is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if stdin_frames is not None:
            assert proc.stdin is not None
            for frame in stdin_frames:
                proc.stdin.write(frame.tobytes())
            proc.stdin.close()
        stderr = proc.stderr.read() if proc.stderr else b""
        code = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if code != 0:
        raise RuntimeError(f"ffmpeg failed ({code}): {' '.join(args)}\n{stderr.decode()[-2000:]}")


def make_clip(
    path: Path | str,
    *,
    frames: int = 48,
    width: int = 640,
    height: int = 360,
    fps: Fraction | int | str = Fraction(25),
    people: Sequence[str] = ("astronaut",),
    audio: bool = True,
    audio_offset: float = 0.0,
    blank_frames: Sequence[int] = (),
    seed: int = 0,
    codec: str = "libx264",
    crf: int = 20,
    rotation: int = 0,
    gop: int | None = None,
    roll: float = 0.0,
) -> ClipInfo:
    """Render a clip of real faces with known ground truth and encode it with ffmpeg.

    Args:
        path: Output file; the suffix picks the container (.mp4, .mov, .mkv, .webm, .avi).
        frames: Number of video frames.
        width, height: Frame size in pixels (even numbers for yuv420p).
        fps: Exact frame rate, e.g. ``Fraction(30000, 1001)``.
        people: One or two names from :data:`PEOPLE`, left to right.
        audio: Add beeps (see :data:`BEEP_PERIOD`) lasting as long as the video.
        audio_offset: Seconds the audio starts after the video (negative: before).
        blank_frames: Frame indices with background only.
        seed: Background and motion seed.
        codec: ffmpeg video encoder.
        crf: Quality for encoders that take ``-crf``.
        rotation: Display rotation to record as side data (0, 90, 180, 270).
        gop: Keyframe interval in frames (short ones make seeking tests meaningful).
        roll: Degrees clockwise the face turns in the picture per frame (see :class:`Scene`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = Fraction(fps)
    scene = Scene(width, height, frames, tuple(people), tuple(sorted(blank_frames)), seed, roll)
    duration = frames / fps
    ffmpeg = find_ffmpeg()
    args = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y"]
    video_in = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}"]
    video_in += ["-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "pipe:0"]
    if audio and audio_offset < 0:
        video_in = ["-itsoffset", f"{-audio_offset:.6f}", *video_in]
    args += video_in
    if audio:
        if audio_offset > 0:
            args += ["-itsoffset", f"{audio_offset:.6f}"]
        # Beeps on the *video* clock (every BEEP_PERIOD s from the first frame) make sync
        # measurable: the audio sample at audio time t plays at video time t + audio_offset.
        gate = f"lt(mod(t+{audio_offset + 1000 * BEEP_PERIOD:.6f},{BEEP_PERIOD}),{BEEP_LENGTH})"
        tone = f"aevalsrc=exprs='0.5*sin(2*PI*{BEEP_HZ}*t)*{gate}'"
        args += ["-f", "lavfi", "-i", f"{tone}:s=48000:d={float(duration):.6f}"]
    args += ["-map", "0:v:0"] + (["-map", "1:a:0"] if audio else [])
    # ffmpeg's default RGB->YUV conversion is BT.601; tagging it as such makes decoders (and
    # players) use BT.601 at any frame size, so decoded frames match Scene.frame() even for
    # HD, where untagged video is read as BT.709.
    args += ["-colorspace", "smpte170m", "-color_primaries", "smpte170m"]
    args += ["-color_trc", "smpte170m", "-color_range", "tv"]
    args += ["-c:v", codec]
    if codec in {"libx264", "libx265", "libvpx-vp9"}:
        args += ["-crf", str(crf)]
    if codec in {"libx264", "libx265"}:
        args += ["-preset", "veryfast"]
    if gop:
        args += ["-g", str(gop), "-keyint_min", str(gop)]
    if codec == "libvpx-vp9":
        args += ["-b:v", "0", "-deadline", "realtime", "-cpu-used", "8"]
    args += ["-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", _audio_codec(path.suffix), "-b:a", "96k"]
    target = path if rotation == 0 else path.with_name(f".unrotated.{path.name}")
    args += [str(target)]
    _run(args, scene.iter_frames())
    if rotation:
        # Side data only, as phones write it: the pixels stay in sensor orientation.
        _run(
            [
                *(ffmpeg, "-hide_banner", "-loglevel", "error", "-y"),
                *("-display_rotation:v:0", str(rotation), "-i", str(target)),
                *("-map", "0", "-c", "copy", str(path)),
            ]
        )
        target.unlink()
    return ClipInfo(
        path=path,
        frame_count=frames,
        fps=fps,
        width=width,
        height=height,
        duration=float(duration),
        scene=scene,
        faces=tuple(scene.faces(i) for i in range(frames)),
        has_audio=audio,
        audio_offset=float(audio_offset) if audio else 0.0,
        rotation=rotation,
    )


def beep_onsets(path: Path | str, stream: int = 0) -> np.ndarray:
    """Start times (s) of the beeps in an audio stream, from the stream's first sample.

    Decoded with ffmpeg directly; add the stream's start offset to the video to get video
    time. Accurate to about a millisecond.
    """
    args = [find_ffmpeg(), "-v", "error", "-nostdin", "-i", str(path), "-map", f"0:a:{stream}"]
    args += ["-ac", "1", "-ar", "48000", "-f", "s16le", "-"]
    pcm = np.frombuffer(subprocess.run(args, capture_output=True, check=True).stdout, "<i2")
    loud = np.abs(pcm.astype(np.float32)) > 0.1 * 32767
    # A beep is loud samples separated by less than a cycle; an onset follows a quiet gap.
    idx = np.flatnonzero(loud)
    if idx.size == 0:
        return np.zeros(0)
    starts = idx[np.concatenate([[True], np.diff(idx) > 48000 * BEEP_LENGTH])]
    return starts / 48000.0


def make_image_folder(
    path: Path | str,
    n: int,
    *,
    ext: str = "png",
    name_format: str = "frame_{index:06d}",
    width: int = 640,
    height: int = 360,
    people: Sequence[str] = ("astronaut",),
    blank_frames: Sequence[int] = (),
    seed: int = 0,
    jpeg_quality: int = 92,
    roll: float = 0.0,
) -> ImageFolderInfo:
    """Write ``n`` frames of a :class:`Scene` as image files (written with cv2, not faceswap).

    Args:
        path: Folder to create.
        n: Number of images.
        ext: ``png``, ``jpg`` or any extension cv2 writes.
        name_format: File stem, formatted with ``index`` (e.g. ``"img{index}"`` for names
            that only sort right naturally).
        roll: Degrees clockwise the face turns per image (see :class:`Scene`).
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    scene = Scene(width, height, n, tuple(people), tuple(sorted(blank_frames)), seed, roll)
    files = []
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext.lower() in {"jpg", "jpeg"} else []
    for i in range(n):
        file = folder / f"{name_format.format(index=i)}.{ext}"
        if not cv2.imwrite(str(file), cv2.cvtColor(scene.frame(i), cv2.COLOR_RGB2BGR), params):
            raise RuntimeError(f"cv2 could not write {file}")
        files.append(file)
    return ImageFolderInfo(
        path=folder,
        files=tuple(files),
        scene=scene,
        faces=tuple(scene.faces(i) for i in range(n)),
    )
