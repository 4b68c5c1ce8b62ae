#!/usr/bin/env bash
# The GPU checks of the train and convert stages, in one run on the lent GPU machine:
#   1. faceswap doctor, 2. tests/test_cuda.py (AMP bf16/fp16 steps, checkpoint + resume,
#   --show-samples and loss.png off the GPU,
#   fp16 inference), 3. bench_train on CUDA with --amp (MFU against the bf16 matmul peak,
#   data pipeline with 8 workers; a torch.profiler table of dfl-h128's bf16 step, so a missed
#   target can be worked on without another GPU run), 4. bench_convert on CUDA (libx264, then --codec auto:
#   NVENC when it works), an HDR convert with --codec auto (HEVC NVENC, 10-bit) and its
#   watermark read back,
#   5. a real `faceswap train` on CUDA with the default (auto)
#   workers, reporting data_wait (the share of each step spent waiting for a batch).
# Prepare .gpu/ first (bash benchmarks/gpu/prepare.sh), then with the device tool:
#   run(command="bash benchmarks/gpu/run.sh", carry=[".gpu"], timeout_s=540)
# The log comes back as $OUT/gpu_log.txt. Each step has its own time limit, so one that hangs
# does not take the rest with it; the whole run takes about 5 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/faceswap-gpu}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gpu/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.gpu/ffmpeg.xz'), open('/tmp/ffmpeg', 'wb'))"
chmod +x /tmp/ffmpeg
export FACESWAP_FFMPEG=/tmp/ffmpeg

step() { echo; echo "== $* ($(date +%T))"; }
{
  step "machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  step "doctor"
  timeout 60 python3 -m faceswap doctor
  step "tests/test_cuda.py"
  timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py
  step "bench_train, batch 16 per side"
  timeout 240 python3 benchmarks/bench_train.py --device cuda --amp \
    --presets original,liae,dfl-h128,dfl-d256 --batch-size 16 --iters 20 --data-seconds 4 --data-workers 8
  step "bench_train, batch 64 per side"
  timeout 180 python3 benchmarks/bench_train.py --device cuda --amp \
    --presets original,dfl-h128 --batch-size 64 --iters 10 --data-seconds 0
  step "bench_train profile: dfl-h128, batch 16 per side, bf16 (the kernels a step runs)"
  timeout 120 python3 benchmarks/bench_train.py --device cuda --amp --presets dfl-h128 \
    --batch-size 16 --iters 3 --profile 3 --data-seconds 0 --peak-seconds 1
  for codec in libx264 auto; do
    step "bench_convert, original, batch 32, amp, codec $codec"
    timeout 150 python3 benchmarks/bench_convert.py --device cuda --amp --preset original \
      --batch-size 32 --codec "$codec" --clip .gpu/clip.mp4 --alignments .gpu/alignments.json \
      --repeat 2
  done
  step "convert an HLG (HDR) clip with --codec auto: HEVC NVENC in 10 bits"
  timeout 120 python3 - <<'PY'
import subprocess
import tempfile
from pathlib import Path

from faceswap.convert import ConvertConfig, run_convert
from faceswap.io.ffmpeg_bin import find_ffmpeg
from faceswap.io.video import probe
from tests.convert.conftest import make_model_dir

tmp = Path(tempfile.mkdtemp())
hlg = tmp / "hlg.mp4"
tags = "colorspace=bt2020nc:color_primaries=bt2020:color_trc=arib-std-b67:range=tv"
subprocess.run([find_ffmpeg(), "-v", "error", "-i", ".gpu/clip.mp4", "-c:a", "copy", "-vf",
                f"format=yuv420p10le,setparams={tags}", "-c:v", "libx264", "-preset",
                "ultrafast", str(hlg)], check=True)
out = tmp / "out.mp4"
result = run_convert(ConvertConfig(input=hlg, model_dir=make_model_dir(tmp / "model"),
                                   output=out, alignments=Path(".gpu/alignments.json"),
                                   codec="auto", device="cuda", amp=True, progress=False))
info = probe(out)
print(f"{info.codec} {info.pix_fmt} {info.color_primaries}/{info.color_transfer}, "
      f"{info.frame_count} frames, {result.fps:.1f} frames/s end to end")
# The watermark through NVENC in 10 bits, read inside the known faces (no dlib models here).
import numpy as np

from faceswap.faces.align import landmark_region
from faceswap.faces.alignments import load_alignments
from faceswap.io.video import open_source
from faceswap.watermark import read_watermark

faces = {r.index: [f.landmarks for f in r.faces] for r in load_alignments(Path(".gpu/alignments.json")).frames}
frames = (
    (f.image, landmark_region(f.image.shape, np.asarray(faces[f.index])) if faces.get(f.index) else None)
    for f in open_source(out, deep=True).iter_frames(every_nth=10)
)
mark = read_watermark(frames)
print(f"watermark after the hardware encode: found {mark.found}, z {mark.z} over {mark.frames} frames")
PY
  step "faceswap train on CUDA, dfl-h128, --amp, default workers"
  timeout 240 python3 - <<'PY'
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from faceswap.train.metrics import read_metrics
from tests.train.synthetic_faces import write_synthetic_faces

tmp = Path(tempfile.mkdtemp())
a = write_synthetic_faces(tmp / "a", 96, 256)
b = write_synthetic_faces(tmp / "b", 96, 256)
cmd = [sys.executable, "-m", "faceswap", "train", "--a", str(a), "--b", str(b),
       "-m", str(tmp / "model"), "--preset", "dfl-h128", "--device", "cuda", "--amp",
       "--batch-size", "32", "--iterations", "150", "--save-every", "150",
       "--log-every", "10", "--no-progress"]
subprocess.run(cmd, check=True, timeout=220)
rows = read_metrics(tmp / "model" / "metrics.csv")[3:]  # past the warm-up
waits = [r["data_wait"] for r in rows]
rates = [r["examples_per_s"] for r in rows]
workers = json.loads((tmp / "model" / "train_config.json").read_text())["workers"]
print(f"data_wait median {statistics.median(waits):.3f}, max {max(waits):.3f}; "
      f"examples/s median {statistics.median(rates):.0f} over {len(rows)} logged rows; "
      f"{workers} workers per side")
PY
  step "done"
} 2>&1 | tee "$out/gpu_log.txt"
