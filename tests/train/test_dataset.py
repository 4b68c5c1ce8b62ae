"""Face folders, masks, sampling streams and augmentation."""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from faceswap.errors import FaceswapError
from faceswap.train.augment import AugmentConfig, ColourAugment, random_transform, random_warp
from faceswap.train.dataset import (
    CACHE_DIR,
    FaceDataset,
    FaceSet,
    StreamSampler,
    face_cache,
    face_masks,
    load_face_set,
    read_face,
    uniform_yaw_weights,
    yaw_proxy,
)

NO_AUG = AugmentConfig(
    flip=False, rotation=0, zoom=0, shift=0, warp=False, colour=False, blur=False
)


def test_load_face_set_reads_crops_and_landmarks(face_dirs: tuple[Path, Path]) -> None:
    faces = load_face_set(face_dirs[0], "A")
    assert len(faces) == 10 and faces.crop_size == 64 and faces.crop.size == 64
    assert all(lm is not None and lm.shape == (68, 2) for lm in faces.landmarks)
    # Aligned landmarks sit inside the crop, nose tip near the centre.
    nose = faces.landmarks[0][30]
    assert 20 < nose[0] < 44 and 20 < nose[1] < 48
    summary = faces.summary()
    assert summary["faces"] == 10 and len(summary["sha256"]) == 64


def test_masks_cover_face_eyes_mouth(face_dirs: tuple[Path, Path]) -> None:
    faces = load_face_set(face_dirs[0], "A")
    masks = face_masks(faces.landmarks[0], 64, 32)
    assert masks.shape == (3, 32, 32) and masks.dtype == np.uint8
    face, eyes, mouth = (m > 127 for m in masks)
    assert face[16, 16] and not face[0, 0]
    assert 0 < eyes.sum() < face.sum() and 0 < mouth.sum() < face.sum()
    ys_eyes, ys_mouth = np.nonzero(eyes)[0].mean(), np.nonzero(mouth)[0].mean()
    assert ys_eyes < ys_mouth  # eyes above the mouth
    assert (face_masks(None, 64, 32) == np.array([255, 0, 0])[:, None, None]).all()


@pytest.mark.parametrize("size", [16, 64, 256])
def test_eye_and_mouth_dilation_near_the_region_equals_the_full_one(size: int) -> None:
    import cv2

    from faceswap.train.dataset import _dilate_around

    rng = np.random.default_rng(size)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (max(3, size // 16) | 1,) * 2)
    for _ in range(20):  # small polygons anywhere, some on the border, and none at all
        mask = np.zeros((size, size), np.uint8)
        if rng.random() < 0.9:
            centre = rng.integers(0, size, 2)
            points = centre + rng.integers(-size // 8, size // 8 + 1, (5, 2))
            cv2.fillConvexPoly(mask, cv2.convexHull(points.astype(np.int32)), 255)
        np.testing.assert_array_equal(_dilate_around(mask, kernel), cv2.dilate(mask, kernel))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_the_faces_of_a_folder_of_videos_are_one_set(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    from tests.train.synthetic_faces import write_synthetic_faces

    # `faceswap extract takes/ -o faces` writes a subfolder per video.
    parent = tmp_path / "faces"
    _copy(face_dirs[0], parent / "take1")
    _copy(face_dirs[1], parent / "take2")
    (parent / "no_faces").mkdir()  # a take without a face leaves no crops
    one, two = load_face_set(face_dirs[0], "A"), load_face_set(face_dirs[1], "A")
    both = load_face_set(parent, "A")
    assert both.folder == parent and len(both) == len(one) + len(two)
    assert [f.parent.name for f in both.files] == ["take1"] * len(one) + ["take2"] * len(two)
    expected = one.landmarks + two.landmarks
    assert all(np.array_equal(a, b) for a, b in zip(both.landmarks, expected, strict=True))
    assert both.crop == one.crop and both.digest not in (one.digest, two.digest)
    sample = FaceDataset(both, 32, NO_AUG)[(len(one), 0)]  # the first face of take2
    assert torch.equal(sample["target"], FaceDataset(two, 32, NO_AUG)[(0, 0)]["target"])
    write_synthetic_faces(parent / "take3", 2, 96)  # another crop size
    with pytest.raises(FaceswapError, match="take1 and take3 were extracted with different crops"):
        load_face_set(parent, "A")


def test_several_faces_folders_are_one_set(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    from tests.train.synthetic_faces import write_synthetic_faces

    first, second = _copy(face_dirs[0], tmp_path / "s1"), _copy(face_dirs[1], tmp_path / "s2")
    one, two = load_face_set(first, "A"), load_face_set(second, "A")
    both = load_face_set([first, second], "A")
    assert len(both) == len(one) + len(two) and both.files == one.files + two.files
    assert both.folder == first and both.sources == (first, second)
    assert both.summary()["folders"] == [str(first), str(second)]
    assert "folders" not in one.summary() and both.digest not in (one.digest, two.digest)
    single = load_face_set([first], "A")  # one folder in a list is just that folder
    assert (single.files, single.digest, single.sources) == (one.files, one.digest, ())
    with pytest.raises(FaceswapError, match="--b: a folder is given twice"):
        load_face_set([first, tmp_path / "s1"], "B")
    write_synthetic_faces(tmp_path / "odd", 2, 96)  # another crop size
    with pytest.raises(FaceswapError, match="were extracted with different crops"):
        load_face_set([first, tmp_path / "odd"], "A")


def test_refuses_unusable_folders(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(FaceswapError, match=r"--a .*no such folder"):
        load_face_set(tmp_path / "missing", "A")
    video = tmp_path / "take.mp4"
    video.write_bytes(b"\0")
    with pytest.raises(FaceswapError) as err:
        load_face_set(video, "B")
    assert str(err.value) == (
        f"--b {video}: a file, not a faces folder; run `faceswap extract {video} -o FACES` "
        "first and pass FACES"
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(FaceswapError, match=r"--b .*no face images"):
        load_face_set(tmp_path / "empty", "B")
    no_align = _copy(face_dirs[0], tmp_path / "no_align")
    (no_align / "alignments.json").unlink()
    with pytest.raises(FaceswapError, match=r"no alignments\.json"):
        load_face_set(no_align, "A")
    mixed = _copy(face_dirs[0], tmp_path / "mixed")
    cv2.imwrite(str(mixed / "frame_000000_0.png"), np.zeros((48, 48, 3), np.uint8))
    with pytest.raises(FaceswapError, match="different sizes"):
        load_face_set(mixed, "A")
    other_size = _copy(face_dirs[0], tmp_path / "other_size")
    data = json.loads((other_size / "alignments.json").read_text())
    data["crop"]["size"] = 128
    (other_size / "alignments.json").write_text(json.dumps(data))
    with pytest.raises(FaceswapError, match="says 128 px"):
        load_face_set(other_size, "A")


def test_sampler_stream_is_resumable_and_shards() -> None:
    full = StreamSampler(7, batch=3, seed=5, side=0)
    stream = [next(it) for it in [iter(full)] for _ in range(30)]
    idx = [i for i, _ in stream]
    assert sorted(idx[:7]) == list(range(7)) and sorted(idx[7:14]) == list(range(7))
    resumed = iter(StreamSampler(7, batch=3, seed=5, side=0, start_step=4))
    assert [next(resumed) for _ in range(18)] == stream[12:30]
    other_side = iter(StreamSampler(7, batch=3, seed=5, side=1))
    assert [next(other_side) for _ in range(30)] != stream
    # Two DDP ranks split each global batch of 6: rank 0 takes 0-2, rank 1 takes 3-5.
    double = iter(StreamSampler(7, batch=6, seed=5, side=0))
    global_stream = [next(double) for _ in range(12)]
    r0, r1 = (iter(StreamSampler(7, 3, 5, 0, rank=r, world=2)) for r in (0, 1))
    assert [next(r0) for _ in range(6)] == global_stream[0:3] + global_stream[6:9]
    assert [next(r1) for _ in range(6)] == global_stream[3:6] + global_stream[9:12]


def test_dataset_samples_are_seeded(face_dirs: tuple[Path, Path]) -> None:
    faces = load_face_set(face_dirs[1], "B")
    ds = FaceDataset(faces, 32, AugmentConfig())
    one, again, other = ds[(3, 42)], ds[(3, 42)], ds[(3, 43)]
    assert one["source"].shape == (3, 32, 32) and one["source"].dtype == torch.uint8
    assert one["masks"].shape == (3, 32, 32)
    for key in one:
        assert torch.equal(one[key], again[key])
    assert not torch.equal(one["target"], other["target"])
    plain = FaceDataset(faces, 64, NO_AUG)[(3, 42)]
    expected = cv2.cvtColor(cv2.imread(str(faces.files[3])), cv2.COLOR_BGR2RGB)
    assert np.array_equal(plain["target"].permute(1, 2, 0).numpy(), expected)
    assert torch.equal(plain["source"], plain["target"])


def _turned(yaw_shift: float, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Mean-face landmarks in a 256 px crop with the nose moved sideways (a head turn)."""
    from faceswap.faces.align import MEAN_FACE

    points = MEAN_FACE * 160 + 48
    width = points[16, 0] - points[0, 0]
    points[27:36, 0] += (yaw_shift + rng.normal(0, jitter)) * width
    return points.astype(np.float32)


def _set_of(landmarks: list[np.ndarray | None], faces: FaceSet) -> FaceSet:
    return dataclasses.replace(faces, files=tuple(Path(f"{i}.png") for i in range(len(landmarks))),
                               landmarks=tuple(landmarks))  # fmt: skip


def test_yaw_proxy_says_how_far_and_which_way_a_face_turns() -> None:
    rng = np.random.default_rng(0)
    assert abs(yaw_proxy(_turned(0.0, 0.0, rng))) < 0.02  # the mean face looks ahead
    assert yaw_proxy(_turned(0.25, 0.0, rng)) == pytest.approx(yaw_proxy(_turned(0, 0, rng)) + 0.25)
    assert yaw_proxy(_turned(-0.25, 0.0, rng)) < -0.2


def test_uniform_yaw_balances_turned_faces_and_leaves_frontal_sets_alone(
    face_dirs: tuple[Path, Path],
) -> None:
    base = load_face_set(face_dirs[0], "A")
    rng = np.random.default_rng(1)
    mixed = _set_of([_turned(0, 0.01, rng) for _ in range(90)]
                    + [_turned(0.25, 0.01, rng) for _ in range(10)], base)  # fmt: skip
    weights = uniform_yaw_weights(mixed)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[90:].sum() == pytest.approx(0.5, abs=0.05)  # 10 % of faces, half the draws
    sampler = StreamSampler(100, 10, seed=3, side=0, weights=weights)
    picks = np.array([sampler.item(p)[0] for p in range(4000)])
    assert 0.45 < (picks >= 90).mean() < 0.55
    # Seeded by position like the plain stream: a resumed run draws the same faces.
    again = StreamSampler(100, 10, seed=3, side=0, weights=weights)
    assert [again.item(p) for p in (3999, 17, 2500)] == [sampler.item(p) for p in (3999, 17, 2500)]
    # All frontal, with landmark jitter and a face without landmarks: about uniform.
    frontal = uniform_yaw_weights(_set_of([_turned(0, 0.01, rng) for _ in range(50)] + [None],
                                          base))  # fmt: skip
    assert frontal.max() / frontal.min() < 1.6


def test_random_transform_flip_and_mask_border() -> None:
    rng_img = np.random.default_rng(0)
    image = rng_img.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    mask = np.full((16, 16), 255, np.uint8)
    flip_only = AugmentConfig(flip=True, rotation=0, zoom=0, shift=0)
    results = [random_transform(np.random.default_rng(s), flip_only, image)[0] for s in range(8)]
    flipped = [np.array_equal(r, image[:, ::-1]) for r in results]
    assert any(flipped) and not all(flipped)
    assert all(f or np.array_equal(r, image) for f, r in zip(flipped, results, strict=True))
    moved = random_transform(np.random.default_rng(1), AugmentConfig(shift=0.3), image, mask)
    assert moved[1].min() == 0  # masks pad with 0: background never becomes face


def test_colour_augment_seeded_and_switchable() -> None:
    face = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    aug = ColourAugment(AugmentConfig())
    outs = [aug(np.random.default_rng(s), face) for s in range(6)]
    assert any(not np.array_equal(t, face) for _, t in outs)
    again = aug(np.random.default_rng(2), face)
    assert np.array_equal(again[0], outs[2][0]) and np.array_equal(again[1], outs[2][1])
    off = ColourAugment(AugmentConfig(colour=False, blur=False))
    src, tgt = off(np.random.default_rng(0), face)
    assert np.array_equal(src, face) and np.array_equal(tgt, face)


def test_random_warp_seeded_and_small() -> None:
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    w1 = random_warp(x, torch.Generator().manual_seed(1))
    w2 = random_warp(x, torch.Generator().manual_seed(1))
    w3 = random_warp(x, torch.Generator().manual_seed(2))
    assert torch.equal(w1, w2) and not torch.equal(w1, w3)
    assert torch.allclose(
        random_warp(x, torch.Generator().manual_seed(1), strength=0.0), x, atol=1e-5
    )
    smooth = torch.linspace(0, 1, 32).expand(1, 3, 32, 32)
    assert (random_warp(smooth, torch.Generator().manual_seed(3)) - smooth).abs().mean() < 0.05
    # Rank 1 of 2 warps like the second half of the global batch drawn by one process.
    whole = random_warp(torch.cat([x, x]), torch.Generator().manual_seed(4))
    part = random_warp(x, torch.Generator().manual_seed(4), shard=(1, 2))
    assert torch.allclose(whole[4:], part)


def test_face_cache_holds_the_decoded_faces_and_follows_changes(
    face_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    folder = _copy(face_dirs[0], tmp_path / "a")
    shutil.rmtree(folder / CACHE_DIR, ignore_errors=True)
    faces = load_face_set(folder, "A")
    path = face_cache(faces, 32)
    assert path is not None and path.parent == folder / CACHE_DIR
    cached = np.load(path)
    assert cached.shape == (len(faces), 32, 32, 3) and cached.dtype == np.uint8
    for i, file in enumerate(faces.files):
        assert np.array_equal(cached[i], read_face(file, 32))
    built = path.stat().st_mtime_ns
    assert face_cache(load_face_set(folder, "A"), 32) == path  # reused, not rebuilt
    assert path.stat().st_mtime_ns == built
    assert load_face_set(folder, "A").files == faces.files  # the cache is not a face
    # A re-extracted face: a new cache, and the old one is gone.
    image = cv2.imread(str(faces.files[0]))
    cv2.imwrite(str(faces.files[0]), 255 - image)
    changed = face_cache(load_face_set(folder, "A"), 32)
    assert changed is not None and changed != path and not path.exists()
    assert np.array_equal(np.load(changed)[0], read_face(faces.files[0], 32))
    assert not list((folder / CACHE_DIR).glob(".*.tmp"))


def _hull_mean(sample: dict[str, torch.Tensor]) -> np.ndarray:
    hull = sample["masks"][0].numpy() > 127
    return sample["target"].permute(1, 2, 0).numpy()[hull].mean(axis=0)


@pytest.mark.parametrize("mode", ["rct", "lct", "avg"])
def test_colour_transfer_gives_b_faces_the_colours_of_a(
    face_dirs: tuple[Path, Path], mode: str
) -> None:
    faces_a, faces_b = load_face_set(face_dirs[0], "A"), load_face_set(face_dirs[1], "B")
    data_a = FaceDataset(faces_a, 64, NO_AUG)
    plain = FaceDataset(faces_b, 64, NO_AUG, colour_ref=data_a)  # transfer off: ref unused
    ct = dataclasses.replace(NO_AUG, colour_transfer=mode)
    moved = FaceDataset(faces_b, 64, ct, colour_ref=data_a)
    a_mean = np.mean([_hull_mean(data_a[(i, 0)]) for i in range(len(data_a))], axis=0)
    keys = [(i, 100 + i) for i in range(len(faces_b))]
    before = np.mean([_hull_mean(plain[k]) for k in keys], axis=0)
    after = np.mean([_hull_mean(moved[k]) for k in keys], axis=0)
    # The two photos' skin differs by tens of levels; the transfer closes most of that.
    assert np.abs(before - a_mean).max() > 15
    assert np.abs(after - a_mean).max() < 0.3 * np.abs(before - a_mean).max()
    assert all(torch.equal(moved[keys[2]][k], moved[keys[2]][k]) for k in ("source", "target"))
    # The masks are B's own: only the colours moved.
    assert torch.equal(moved[keys[2]]["masks"], plain[keys[2]]["masks"])


def test_colour_transfer_names_are_checked() -> None:
    with pytest.raises(FaceswapError, match=r"colour transfer 'seamless'.*rct"):
        AugmentConfig(colour_transfer="seamless")


def test_cached_samples_equal_uncached_ones(face_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    faces = load_face_set(_copy(face_dirs[1], tmp_path / "b"), "B")
    plain = FaceDataset(faces, 32, AugmentConfig())
    cached = FaceDataset(faces, 32, AugmentConfig(), face_cache(faces, 32))
    for key in [(3, 42), (0, 7), (9, 1234)]:
        a, b = plain[key], cached[key]
        for name in a:
            assert torch.equal(a[name], b[name])
    assert pickle.loads(pickle.dumps(cached))._cached is None  # workers map it themselves
    # Faces with masks of their own: the masks ride in the cache, samples still the same.
    from faceswap.train.dataset import MASKS_DIR

    (tmp_path / "b" / MASKS_DIR).mkdir()
    for crop in sorted((tmp_path / "b").glob("*.png"))[:4]:
        cv2.imwrite(str(tmp_path / "b" / MASKS_DIR / crop.name), _occluded_mask(64))
    masked = load_face_set(tmp_path / "b", "B")
    cache = face_cache(masked, 32)
    assert cache is not None and np.load(cache, mmap_mode="r").shape == (10, 32, 32, 4)
    plain = FaceDataset(masked, 32, AugmentConfig())
    cached = FaceDataset(masked, 32, AugmentConfig(), cache)
    for key in [(0, 5), (2, 9), (7, 3)]:  # painted and hull faces
        a, b = plain[key], cached[key]
        assert all(torch.equal(a[name], b[name]) for name in a), key
    first = plain[(0, 5)]["masks"]
    assert masked.user_masks[0] is not None
    masked.user_masks[0].unlink()  # read from the cache, not the file
    assert torch.equal(cached[(0, 5)]["masks"], first)


def test_face_cache_is_skipped_where_the_folder_is_read_only(
    face_dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faces = load_face_set(_copy(face_dirs[0], tmp_path / "a"), "A")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError("read-only file system")

    monkeypatch.setattr(np.lib.format, "open_memmap", refuse)
    assert face_cache(faces, 48) is None


def _occluded_mask(size: int) -> np.ndarray:
    """A painted mask: the whole crop is face but for a 'hand' over the left eye."""
    mask = np.full((size, size), 255, np.uint8)
    mask[size * 5 // 16 : size * 9 // 16, size // 8 : size // 2] = 0
    return mask


def test_painted_masks_replace_the_hull_where_given(
    face_dirs: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from faceswap.train.dataset import MASKS_DIR, read_user_mask

    folder = _copy(face_dirs[0], tmp_path / "a")
    (folder / MASKS_DIR).mkdir()
    names = sorted(p.stem for p in folder.glob("*.png"))
    for stem in names[:4]:
        cv2.imwrite(str(folder / MASKS_DIR / f"{stem}.png"), _occluded_mask(64))
    cv2.imwrite(str(folder / MASKS_DIR / "stray.png"), _occluded_mask(64))
    with caplog.at_level("WARNING"):
        faces = load_face_set(folder, "A")
    assert "1 of the 5 masks match no face" in caplog.text
    assert faces.summary()["user_masks"] == 4
    assert faces.digest != load_face_set(face_dirs[0], "A").digest
    ds = FaceDataset(faces, 32, NO_AUG)
    masked = ds[(0, 0)]["masks"].numpy()
    np.testing.assert_array_equal(masked[0], read_user_mask(faces.user_masks[0], 32))
    hole = masked[0] == 0
    assert hole.sum() > 50 and not masked[1][hole].any()  # no eye weight behind the hand
    assert masked[1].any()  # the other eye keeps it
    plain = ds[(5, 0)]["masks"].numpy()
    np.testing.assert_array_equal(plain, face_masks(faces.landmarks[5], 64, 32))
    # One folder with masks and one without make one set; a bad mask is one clear line.
    both = load_face_set([folder, face_dirs[1]], "A")
    assert len(both.user_masks) == 20 and sum(m is not None for m in both.user_masks) == 4
    (folder / MASKS_DIR / f"{names[0]}.png").write_bytes(b"not a png")
    with pytest.raises(FaceswapError, match="unreadable mask"):
        FaceDataset(load_face_set(folder, "A"), 32, NO_AUG)[(0, 0)]


def test_sample_transform_moves_points_with_the_image() -> None:
    from faceswap.train.augment import sample_transform

    cfg = AugmentConfig(rotation=20, zoom=0.1, shift=0.1, flip=True)
    for seed in range(6):  # flipped and not
        image = np.zeros((64, 64), np.float32)
        image[20, 40] = 1.0
        image = cv2.GaussianBlur(image, (7, 7), 1.5)
        transform = sample_transform(np.random.default_rng(seed), cfg, 64)
        (moved,) = transform.apply(image)
        ys, xs = np.mgrid[:64, :64]
        centre = np.array([(xs * moved).sum(), (ys * moved).sum()]) / moved.sum()
        np.testing.assert_allclose(transform.apply_points(np.array([[40.0, 20.0]]))[0], centre,
                                   atol=0.15)  # fmt: skip
    # the same draws as random_transform: the sample stream of a run does not change
    face = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    a = random_transform(np.random.default_rng(3), cfg, face)[0]
    b = sample_transform(np.random.default_rng(3), cfg, 32).apply(face)[0]
    assert np.array_equal(a, b)


def test_warp_to_landmarks_moves_each_point_onto_its_partner() -> None:
    from faceswap.faces.align import MEAN_FACE, CropSpec
    from faceswap.train.augment import warp_to_landmarks

    rng = np.random.default_rng(0)
    m = CropSpec(size=64, coverage=0.8, centering="face").unit_to_crop()
    own = MEAN_FACE @ m[:2, :2].T + m[:2, 2]
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    # the same points: the image comes back as it was
    assert np.abs(warp_to_landmarks(image, own, own).astype(int) - image).max() <= 1
    # another face's shape (wider, higher, a little different everywhere): a dot at one of
    # the face's points lands on the partner's point
    partner = (own - 32) * [1.08, 0.97] + [33.5, 30.8] + rng.normal(0, 0.3, own.shape)
    dot = np.zeros((64, 64), np.float32)
    x, y = np.round(own[30])
    own[30] = (x, y)
    dot[int(y), int(x)] = 1.0
    dot = cv2.GaussianBlur(dot, (5, 5), 1.0)
    moved = warp_to_landmarks(dot, own, partner)
    ys, xs = np.mgrid[:64, :64]
    centre = np.array([(xs * moved).sum(), (ys * moved).sum()]) / moved.sum()
    np.testing.assert_allclose(centre, partner[30], atol=0.3)
    # the border stays put
    warped = warp_to_landmarks(image, own, partner)
    assert np.array_equal(warped[0], image[0]) and np.array_equal(warped[:, -1], image[:, -1])


def test_closest_faces_are_the_nearest_shapes_of_the_other_side() -> None:
    from faceswap.train.augment import closest_faces

    rng = np.random.default_rng(1)
    base = rng.uniform(10, 54, (68, 2))
    # faces of the other side: base moved by 0, 1, ..., 7 px (in 64 px crops), one without
    theirs = [base + d for d in range(8)] + [None]
    mine = [base + 2.2, None, base * 2]  # the last in 128 px crops: the same shape as base
    nearest = closest_faces(mine, theirs, (64, 64), k=3)
    assert nearest.shape == (3, 3) and list(nearest[0]) == [2, 3, 1]
    assert list(nearest[1]) == [-1, -1, -1]
    assert closest_faces(mine[2:], theirs, (128, 64), k=2)[0].tolist() == [0, 1]
    with pytest.raises(FaceswapError, match="landmarks on both sides"):
        closest_faces(mine, [None, None], (64, 64))


def test_landmark_warp_changes_the_source_only(face_dirs: tuple[Path, Path]) -> None:
    from faceswap.train.dataset import LandmarkPartners

    faces_a, faces_b = load_face_set(face_dirs[0], "A"), load_face_set(face_dirs[1], "B")
    partners = LandmarkPartners.between(faces_a, faces_b)
    assert partners.indices.shape == (len(faces_a), min(10, len(faces_b)))
    plain_cfg = AugmentConfig(blur=False)
    warp_cfg = dataclasses.replace(plain_cfg, warp_to_landmarks=True)
    plain = FaceDataset(faces_a, 64, plain_cfg)
    warped = FaceDataset(faces_a, 64, warp_cfg, partners=partners)
    assert FaceDataset(faces_a, 64, plain_cfg, partners=partners).partners is None  # off
    changed = 0
    for key in [(i, 100 + i) for i in range(len(faces_a))]:
        a, b = plain[key], warped[key]
        assert torch.equal(a["target"], b["target"]) and torch.equal(a["masks"], b["masks"])
        changed += not torch.equal(a["source"], b["source"])
    assert changed == len(faces_a)
    again = warped[(0, 100)]["source"]
    assert torch.equal(again, warped[(0, 100)]["source"])  # seeded
    assert pickle.loads(pickle.dumps(warped)).partners is not None  # for spawned workers
    cfg = dataclasses.replace(warp_cfg, warp=False)  # --no-warp: no warp of either kind
    assert not cfg.landmark_warp and not cfg.grid_warp
    assert warp_cfg.landmark_warp and not warp_cfg.grid_warp and plain_cfg.grid_warp


def test_training_masks_cover_what_convert_pastes(face_dirs: tuple[Path, Path]) -> None:
    from faceswap.convert.masks import MASK_MODES

    faces = load_face_set(face_dirs[0], "A")
    landmarks = faces.landmarks[0]
    trained = face_masks(landmarks, faces.crop_size, faces.crop_size)[0]
    pasted = MASK_MODES.get("hull").build(landmarks, faces.crop_size, None)
    np.testing.assert_array_equal(trained, np.round(pasted * 255).astype(np.uint8))
    # the forehead above the brows counts as face
    brow_top = int(landmarks[17:27, 1].min())
    x = int(landmarks[27, 0])
    assert trained[brow_top - 3, x] == 255


def test_colour_strength_scales_the_relighting() -> None:
    face = np.full((32, 32, 3), 128, np.uint8)
    face[8:24, 8:24] = (200, 150, 120)

    def spread(strength: float) -> float:
        aug = ColourAugment(AugmentConfig(blur=False, colour_strength=strength))
        means = [aug(np.random.default_rng(s), face)[1].mean() for s in range(40)]
        return float(np.std(means))

    assert spread(0.0) == 0.0  # off: the face as it was
    assert 1.5 * spread(0.5) < spread(1.0) < spread(2.0) / 1.5
    # the default is the augmentation it always was
    default = ColourAugment(AugmentConfig(blur=False))
    scaled = ColourAugment(AugmentConfig(blur=False, colour_strength=1.0))
    for s in range(5):
        assert np.array_equal(default(np.random.default_rng(s), face)[1],
                              scaled(np.random.default_rng(s), face)[1])  # fmt: skip
    with pytest.raises(FaceswapError, match="--colour-strength must be in"):
        AugmentConfig(colour_strength=-1)


def test_jpeg_artefacts_reach_the_input_only() -> None:
    rng = np.random.default_rng(0)
    face = cv2.GaussianBlur(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), (3, 3), 0)
    aug = ColourAugment(AugmentConfig(colour=False, blur=False, jpeg=True))
    changed = 0
    for s in range(30):
        source, target = aug(np.random.default_rng(s), face)
        assert np.array_equal(target, face)  # the target stays sharp
        changed += not np.array_equal(source, face)
    assert 4 <= changed <= 20  # about a third of the samples
    assert ColourAugment(AugmentConfig(colour=False, blur=False)).degrade is None


def test_downscaling_softens_the_input_only() -> None:
    rng = np.random.default_rng(1)
    face = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)  # all fine detail
    aug = ColourAugment(AugmentConfig(colour=False, blur=False, downscale=True))

    def detail(image: np.ndarray) -> float:  # what a 3x3 box blur takes away
        return float(np.abs(image.astype(float) - cv2.blur(image, (3, 3))).mean())

    softened = 0
    for s in range(30):
        source, target = aug(np.random.default_rng(s), face)
        assert np.array_equal(target, face) and source.shape == face.shape
        if not np.array_equal(source, face):
            softened += 1
            assert detail(source) < 0.6 * detail(face)  # lower resolution, not noise
    assert 4 <= softened <= 20  # about a third of the samples
