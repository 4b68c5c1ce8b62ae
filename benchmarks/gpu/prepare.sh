#!/usr/bin/env bash
# Prepare, on a CPU machine with the project installed, what benchmarks/gpu/run.sh needs on the
# lent GPU machine. That machine has PyTorch, OpenCV, NumPy, SciPy and pytest but reaches no
# package registry, and a call carries at most 64 MiB. Everything goes to .gpu/ (git-ignored):
#   .gpu/whl/         wheels of the missing pure dependencies (albumentations and its own),
#                     for CPython 3.12 (the GPU machine's), at the versions installed here
#   .gpu/ffmpeg.xz    the ffmpeg 9.0 that imageio-ffmpeg bundles here, xz-packed (172 -> 48 MiB)
#   .gpu/clip.mp4     a generated 480-frame 640x360 clip with audio, and its
#   .gpu/alignments.json   ground-truth alignments (the GPU machine has no dlib models)
# Run from anywhere: bash benchmarks/gpu/prepare.sh   (about a minute; reruns reuse files)
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-python}
mkdir -p .gpu/whl

packages=$("$py" - <<'PY'
from importlib.metadata import version
names = ["albumentations", "albucore", "pydantic", "pydantic-core", "annotated-types",
         "typing-inspection", "stringzilla", "simsimd"]
print(" ".join(f"{n}=={version(n)}" for n in names))
PY
)
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  platforms+=(--platform "$tag")
done
# shellcheck disable=SC2086  # one argument per package
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d .gpu/whl $packages

if [ ! -s .gpu/ffmpeg.xz ]; then
  ffmpeg=$("$py" -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())")
  xz -T0 -6 -c "$ffmpeg" > .gpu/ffmpeg.xz.tmp && mv .gpu/ffmpeg.xz.tmp .gpu/ffmpeg.xz
fi

if [ ! -s .gpu/alignments.json ]; then
  PYTHONPATH=$PWD "$py" - <<'PY'
from pathlib import Path

from tests.convert.conftest import truth_alignments
from tests.media import make_clip

clip = make_clip(Path(".gpu/clip.mp4"), frames=480, width=640, height=360, audio=True)
truth_alignments(clip, Path(".gpu/alignments.json"))
PY
fi
du -sh .gpu
total=$(du -sk --exclude=.venv --exclude=.git . | cut -f1)
echo "working tree with .gpu: $((total / 1024)) MiB (a device call carries at most 64)"
