"""Face folders without dlib or photos: synthetic crops in the layout ``faceswap extract`` writes.

For benchmarks and for machines (the lent GPU machine) where dlib's landmark model is not
installed; tests that need real faces use ``tests/train/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path


def write_synthetic_faces(folder: Path, n: int, crop_size: int) -> Path:
    """``n`` aligned crops of a synthetic face (mean-face landmarks on smooth noise) and their
    ``alignments.json``, in the layout ``faceswap extract`` writes."""
    from fractions import Fraction

    import cv2
    import numpy as np

    from faceswap.faces.align import MEAN_FACE, CropSpec, alignment_matrix, warp_to_crop
    from faceswap.faces.alignments import Alignments, FaceRecord, FrameRecord, save_alignments

    rng = np.random.default_rng(0)
    spec = CropSpec(size=crop_size)
    frames = []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        small = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        frame = cv2.resize(small, (512, 512), interpolation=cv2.INTER_CUBIC)
        pts = (MEAN_FACE * 200 + 150 + rng.normal(0, 2, size=2)).astype(np.float32)
        matrix = alignment_matrix(pts, spec)
        name = f"frame_{i:06d}_0.png"
        crop = warp_to_crop(frame, matrix, crop_size)
        cv2.imwrite(str(folder / name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        box = np.concatenate([pts.min(axis=0), pts.max(axis=0)]).astype(np.float32)
        face = FaceRecord(
            box=box, score=1.0, landmarks=pts, matrix=matrix, crop_file=name, descriptor=None
        )
        frames.append(FrameRecord(index=i, timestamp=i / 25, faces=(face,), detected=True))
    save_alignments(
        folder / "alignments.json",
        Alignments(
            source="synthetic.mp4",
            frame_count=n,
            fps=Fraction(25),
            width=512,
            height=512,
            crop=spec,
            detector="synthetic",
            frames=frames,
        ),
    )
    return folder
