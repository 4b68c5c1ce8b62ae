"""Extract throughput: frames/s per detector backend against ffmpeg's decode-only ceiling.

Usage::

    PYTHONPATH=. python benchmarks/bench_extract.py              # generated 640x360 clip
    PYTHONPATH=. python benchmarks/bench_extract.py --clip my.mp4 --backends dlib-hog,fan

The generated clip (tests/media.py) shows the astronaut moving, scaling and re-lit, with a
few face-free frames. For each backend it runs the whole extract stage (decode, detect/track,
align, write PNG crops and alignments) and prints frames/s, excluding model loading, and how
many frames had a face. ``dlib-hog/every`` detects on every frame (no tracking): the baseline
that tracking must match in frames-with-face. ``--rotate 45`` runs on that clip (what looking
for turned faces costs on upright ones) and on a second generated clip whose face turns a
full circle (``turning``), against the upright-only default there; ``--refeed 8`` and
``--normalise clahe`` show what those cost. A folder of ``--images`` 1280x720 photos is
extracted on one process and on a process per core (faces found image by image).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faceswap.extract import ExtractConfig, run_extract
from faceswap.faces.detectors import backend_status
from faceswap.io.ffmpeg_bin import find_ffmpeg


def decode_fps(clip: Path, frames: int) -> float:
    """Frames/s of ffmpeg decoding to raw RGB (what extract reads) and discarding it."""
    cmd = [find_ffmpeg(), "-v", "error", "-i", str(clip), "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-"]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return frames / (time.perf_counter() - t0)


def run_one(clip: Path, detector: str, detect_every: int, **kw) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ExtractConfig(
            input=clip,
            output=Path(tmp) / "out",
            detector=detector,
            detect_every=detect_every,
            progress=False,
            **kw,
        )
        t0 = time.perf_counter()
        result = run_extract(cfg)
        wall = time.perf_counter() - t0
    src = result.sources[0]
    return {
        "fps": src.frames / src.seconds,
        "wall_fps": src.frames / wall,
        "frames": src.frames,
        "with_face": src.frames - src.frames_without_face,
        "faces": src.faces,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, help="clip to use (default: generate one)")
    parser.add_argument("--frames", type=int, default=300, help="frames of the generated clip")
    parser.add_argument(
        "--backends", default="dlib-hog,dlib-cnn,fan", help="comma-separated backends"
    )
    parser.add_argument("--cnn-frames", type=int, default=30, help="frames for dlib-cnn (slow)")
    parser.add_argument(
        "--images", type=int, default=128, help="1280x720 images of the folder runs (0: none)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        clip = args.clip
        if clip is None:
            from tests.media import make_clip

            clip = Path(tmp) / "bench.mp4"
            blank = tuple(range(100, 110))
            info = make_clip(clip, frames=args.frames, width=640, height=360,
                             fps=Fraction(25), audio=False, blank_frames=blank, seed=7)  # fmt: skip
            n, truth_faces = info.frame_count, sum(1 for f in info.faces if f)
            turning = make_clip(Path(tmp) / "turning.mp4", frames=args.frames, width=640,
                                height=360, fps=Fraction(25), audio=False, seed=7,
                                roll=360.0 / args.frames).path  # fmt: skip
        else:
            from faceswap.io.video import open_source

            n, truth_faces = open_source(clip).frame_count, None
            turning = None
        usable = {s.name: s.usable for s in backend_status()}
        print(f"clip: {clip.name}, {n} frames 640x360" + (
            f", {truth_faces} with a face" if truth_faces is not None else ""))  # fmt: skip
        print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
        print(f"ffmpeg decode only           {decode_fps(clip, n):8.1f} frames/s")
        runs = []
        for backend in args.backends.split(","):
            if not usable.get(backend, False):
                print(f"{backend:<28} skipped (not usable here: see `faceswap doctor`)")
                continue
            if backend == "dlib-hog":
                runs += [("dlib-hog (detect every 5)", backend, 5, {}),
                         ("dlib-hog/every (baseline)", backend, 1, {}),
                         ("dlib-hog --rotate 45", backend, 5, {"rotate": "45"}),
                         ("dlib-hog --refeed 8", backend, 5, {"refeed": 8}),
                         ("dlib-hog --normalise clahe", backend, 5,
                          {"normalise": "clahe"})]  # fmt: skip
                if turning is not None:
                    runs += [("turning: dlib-hog", backend, 5, {"input": turning}),
                             ("turning: dlib-hog --rotate 45", backend, 5,
                              {"input": turning, "rotate": "45"})]  # fmt: skip
            elif backend == "dlib-cnn":
                runs.append((f"dlib-cnn (every 5, {args.cnn_frames} fr)", backend, 5,
                             {"every_nth": max(1, n // args.cnn_frames)}))  # fmt: skip
            else:
                runs.append((f"{backend} (detect every 5)", backend, 5, {}))
        if args.images and usable.get("dlib-hog", False):
            from tests.media import make_image_folder

            photos = make_image_folder(Path(tmp) / "photos", args.images, width=1280,
                                       height=720, seed=3).path  # fmt: skip
            cores = os.cpu_count() or 1
            runs += [(f"{args.images} images, 1 process", "dlib-hog", 5,
                      {"input": photos, "workers": 1}),
                     (f"{args.images} images, {cores} processes", "dlib-hog", 5,
                      {"input": photos, "workers": 0})]  # fmt: skip
        for label, backend, every, kw in runs:
            r = run_one(kw.pop("input", clip), backend, every, **kw)
            print(
                f"{label:<28} {r['fps']:8.1f} frames/s ({r['wall_fps']:.1f} with model load), "
                f"{r['with_face']}/{r['frames']} frames with a face, {r['faces']} faces"
            )


if __name__ == "__main__":
    main()
