"""Convert throughput: end to end against its two ceilings (model alone, ffmpeg alone).

Run from the repository root::

    PYTHONPATH=$PWD python benchmarks/bench_convert.py --frames 120 --preset tiny --batch-size 16

On a generated 640x360 clip with audio (``--size 1920x1080`` for HD; one face per frame,
faces from a ground-truth alignments file so no detector time is counted unless
``--detect``), it prints:

* end-to-end frames/s of ``run_convert`` (decode, swap, blend, encode, overlapped);
* model-only faces/s: the same preset and batch size on ready-made crops;
* ffmpeg-only frames/s: decode then encode with the same codec and preset, no processing;
* the efficiency: end to end / the slower ceiling (target >= 0.8);
* on a CPU, where the model and ffmpeg take turns on the same cores, also the bound of
  both sharing them, ``1 / (1 / model + 1 / ffmpeg)``, and end to end against it: when the
  two ceilings are close (HD on two cores) the slower one cannot be reached.

``--ten-bit`` re-encodes the clip as 10-bit H.264 first, so convert works in 16 bits (its
default ``--bit-depth auto``; ``--bit-depth 8`` for the 8-bit path on the same clip), and the
ffmpeg-only run moves 16-bit frames too.

The model is untrained (timings do not depend on the weights).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faceswap.convert import ConvertConfig, run_convert
from faceswap.convert.swapper import Swapper
from faceswap.device import cpu_inference_gemm_library, resolve_device
from faceswap.faces.align import CropSpec, alignment_matrix, warp_to_crop
from faceswap.io.video import VideoWriter, open_source, pick_encoder
from faceswap.nets import build_model, load_preset
from faceswap.train.checkpoint import save_model
from tests.convert.conftest import truth_alignments
from tests.media import make_clip


def face_crops(clip: Path, alignments: Path, model_dir: Path, count: int) -> np.ndarray:
    """Aligned crops of the clip's faces at the model's resolution, as convert makes them."""
    from faceswap.faces.alignments import load_alignments
    from faceswap.train.checkpoint import read_model_json

    config, crop = read_model_json(model_dir)
    spec = CropSpec(config.resolution, crop.coverage, crop.centering)
    by_index = load_alignments(alignments).by_index()
    out: list[np.ndarray] = []
    for frame in open_source(clip).iter_frames():
        record = by_index.get(frame.index)
        for face in record.faces if record is not None else ():
            m = alignment_matrix(face.landmarks, spec)
            out.append(warp_to_crop(frame.image, m, spec.size))
        if len(out) >= count:
            break
    if not out:
        raise SystemExit(f"{alignments}: no faces in {clip}")
    while len(out) < count:  # a short clip: repeat its faces
        out.extend(out[: count - len(out)])
    return np.stack(out[:count])


def ten_bit_copy(clip: Path, out: Path) -> Path:
    """``clip`` re-encoded as 10-bit 4:2:0 H.264 (near-lossless), its audio copied."""
    from faceswap.io.ffmpeg_bin import find_ffmpeg

    args = [find_ffmpeg(), "-v", "error", "-i", str(clip), "-map", "0", "-c:a", "copy"]
    args += ["-c:v", "libx264", "-crf", "10", "-preset", "veryfast", "-pix_fmt", "yuv420p10le"]
    subprocess.run([*args, str(out)], check=True)
    return out


def model_only(
    model_dir: Path, device: torch.device, crops: np.ndarray, n: int, amp: bool
) -> float:
    """Faces/s of the Swapper on ready-made crops (incl. host copies), over >= 1.5 s."""
    from faceswap.train.checkpoint import load_for_inference

    loaded = load_for_inference(model_dir, device)
    swapper = Swapper(loaded.model, device, "a2b", amp=amp)
    swapper(crops)  # warm-up (cudnn autotune, allocator)
    if device.type == "cuda":
        torch.cuda.synchronize()
    done = 0
    start = time.perf_counter()
    while done < n or time.perf_counter() - start < 1.5:
        swapper(crops)  # returns numpy: includes the host copy, as convert pays it
        done += len(crops)
    return done / (time.perf_counter() - start)


def ffmpeg_only(clip: Path, out: Path, codec: str, preset: str, crf: int, deep: bool) -> float:
    src = open_source(clip, deep=deep)
    start = time.perf_counter()
    with VideoWriter(
        out, src.width, src.height, src.fps, codec=codec, crf=crf, preset=preset,
        audio_from=clip, deep=src.deep,
    ) as writer:  # fmt: skip
        n = 0
        for frame in src.iter_frames():
            writer.write(frame.image)
            n += 1
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument(
        "--size", default="640x360", help="WIDTHxHEIGHT of the generated clip (1920x1080: HD)"
    )
    parser.add_argument("--preset", default="tiny", help="model preset name or YAML path")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--encoder-preset", default="veryfast")
    parser.add_argument("--crf", type=int, default=18)
    parser.add_argument("--colour", default="rct")
    parser.add_argument("--detect", action="store_true", help="detect faces on the fly")
    parser.add_argument(
        "--ten-bit", action="store_true", help="convert a 10-bit copy of the generated clip"
    )
    parser.add_argument("--bit-depth", default="auto", choices=["auto", "8"])
    parser.add_argument(
        "--clip",
        type=Path,
        help="use this video and its --alignments instead of generating a clip",
    )
    parser.add_argument("--alignments", type=Path, help="alignments file of --clip")
    parser.add_argument(
        "--repeat", type=int, default=3, help="best of N runs of each (shared machines are noisy)"
    )
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.codec == "auto":  # as convert resolves it: the first hardware encoder that works
        args.codec = pick_encoder()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        if args.clip is not None:
            if args.alignments is None:
                parser.error("--clip needs --alignments (the faces for the model-only run)")
            clip_path, alignments = args.clip, args.alignments
        else:
            try:
                width, height = (int(v) for v in args.size.lower().split("x"))
            except ValueError:
                parser.error(f"--size {args.size}: give WIDTHxHEIGHT, e.g. 1920x1080")
            clip = make_clip(
                tmp / "clip.mp4", frames=args.frames, width=width, height=height, audio=True
            )
            clip_path, alignments = clip.path, truth_alignments(clip, tmp / "alignments.json")
            if args.ten_bit:
                clip_path = ten_bit_copy(clip.path, tmp / "clip10.mp4")
        info = open_source(clip_path)
        cfg = load_preset(args.preset)
        torch.manual_seed(0)
        save_model(tmp / "model", build_model(cfg), crop=CropSpec(256), card={"preset": cfg.name})
        print(f"setup: {len(info)}-frame {info.width}x{info.height} clip and {cfg.name} model "
              f"({cfg.resolution} px) in {time.perf_counter() - t0:.1f} s")  # fmt: skip

        convert_cfg = ConvertConfig(
            input=clip_path,
            model_dir=tmp / "model",
            output=tmp / "out.mp4",
            alignments=None if args.detect else alignments,
            colour=args.colour,
            batch_size=args.batch_size,
            device=args.device,
            amp=args.amp,
            codec=args.codec,
            preset=args.encoder_preset,
            crf=args.crf,
            progress=False,
            bit_depth=args.bit_depth,
        )
        # Rounds interleave the three measurements so a burst of load elsewhere on a shared
        # machine hits all of them alike; the best of each is reported.
        n_faces = max(len(info), 4 * args.batch_size)
        crops = face_crops(clip_path, alignments, tmp / "model", args.batch_size)
        io_fps = model_fps = 0.0
        result = None
        for _ in range(args.repeat):
            io_fps = max(
                io_fps,
                ffmpeg_only(
                    clip_path,
                    tmp / "io.mp4",
                    args.codec,
                    args.encoder_preset,
                    args.crf,
                    deep=args.bit_depth == "auto",
                ),
            )
            # From a worker thread, as the pipeline calls it: on a loaded CPU the main
            # thread's OpenMP team measured up to several times slower.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                job = pool.submit(model_only, tmp / "model", device, crops, n_faces, args.amp)
                model_fps = max(model_fps, job.result())
            run = run_convert(convert_cfg)
            if result is None or run.fps > result.fps:
                result = run
        assert result is not None
    threads = torch.get_num_threads()
    ceiling = min(io_fps, model_fps)  # one face per frame: faces/s = frames/s
    depth = f"{info.info.bit_depth}-bit clip, --bit-depth {args.bit_depth}" if info.info else ""
    gemm = f", CPU GEMMs {cpu_inference_gemm_library()}" if device.type == "cpu" else ""
    print(f"device {device}{gemm}, torch threads {threads}, {depth}, codec {args.codec} "
          f"-preset {args.encoder_preset} -crf {args.crf}, colour {args.colour}, "
          f"batch {args.batch_size}{', amp' if args.amp else ''}"
          f"{', on-the-fly detection' if args.detect else ', faces from alignments'}")  # fmt: skip
    print(f"end-to-end:   {result.fps:8.1f} frames/s ({result.frames} frames, "
          f"{result.faces_swapped} faces, {result.seconds:.2f} s incl. model load)")  # fmt: skip
    stages = ", ".join(f"{k} {v:.2f}" for k, v in result.stage_seconds.items())
    print(f"stage busy s: {stages}")
    print(f"model only:   {model_fps:8.1f} faces/s")
    print(f"ffmpeg only:  {io_fps:8.1f} frames/s (decode + encode)")
    print(f"efficiency:   {result.fps / ceiling:8.2f} of the slower ceiling (target >= 0.80)")
    if device.type == "cpu":
        # On a CPU the model and ffmpeg share the cores: each ceiling was measured with all
        # of them, so together they cannot beat doing one after the other on all cores.
        shared = 1.0 / (1.0 / model_fps + 1.0 / io_fps)
        print(f"shared cores: {shared:8.1f} frames/s for both on the same cores; end to end "
              f"is {result.fps / shared:.2f} of that")  # fmt: skip


if __name__ == "__main__":
    main()
