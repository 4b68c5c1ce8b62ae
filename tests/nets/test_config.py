"""Presets: loading, validation, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceswap.errors import FaceswapError
from faceswap.nets import PRESETS, ModelConfig, load_preset, scaled

# the presets the README lists
EXPECTED = {
    "tiny",
    "original",
    "lightweight",
    "quick96",
    "dfl-h128",
    "liae",
    "dfl-d256",
    "liae-ud256",
}


def test_every_expected_preset_is_registered_and_loads() -> None:
    assert set(PRESETS.names()) >= EXPECTED
    for name in PRESETS:
        cfg = load_preset(name)
        assert cfg.name == name
        upscales = len(cfg.decoder_widths) + 1 + int(cfg.subpixel_output)
        assert cfg.latent_size * 2**upscales == cfg.resolution


def test_original_matches_the_classic_layout() -> None:
    cfg = load_preset("original")
    assert cfg.resolution == 64
    assert cfg.encoder_widths == (128, 256, 512, 1024) and cfg.encoder_kernel == 5
    assert cfg.bottleneck == 1024 and cfg.latent_size == 4 and cfg.latent_channels == 1024
    assert cfg.encoder_upscale == 512 and cfg.decoder_widths == (256, 128, 64)


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(FaceswapError) as info:
        load_preset("nope")
    message = str(info.value)
    assert "unknown model preset 'nope'" in message
    for name in EXPECTED:
        assert name in message


def test_unknown_yaml_key_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("resolution: 64\nbottlenek: 512\n")
    with pytest.raises(FaceswapError) as info:
        load_preset(path)
    message = str(info.value)
    assert str(path) in message and "bottlenek" in message and "valid keys" in message
    assert "\n" not in message


def test_custom_yaml_path_loads(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text("arch: liae\nresolution: 32\nencoder_widths: [8, 16]\nbottleneck: 16\n")
    cfg = load_preset(path)
    assert cfg.name == "small" and cfg.arch == "liae" and cfg.encoder_widths == (8, 16)


def test_a_variant_names_its_base_and_only_what_it_changes(tmp_path: Path) -> None:
    import dataclasses

    variant = tmp_path / "h128_mask.yaml"
    variant.write_text("base: dfl-h128\nlearned_mask: true\nbottleneck: 256\n")
    cfg = load_preset(variant)
    base = load_preset("dfl-h128")
    assert cfg.name == "h128_mask" and cfg.learned_mask and cfg.bottleneck == 256
    assert cfg.description == "dfl-h128 with bottleneck, learned_mask changed"
    kept = ("name", "description", "learned_mask", "bottleneck")
    same = dataclasses.replace(cfg, **{key: getattr(base, key) for key in kept})
    assert same == base  # every other key is the base's
    # A base given as a path, relative to the file; a chain of two.
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "v96.yaml").write_text("base: ../h128_mask.yaml\nresolution: 96\n")
    chained = load_preset(tmp_path / "sub" / "v96.yaml")
    assert chained.resolution == 96 and chained.learned_mask and chained.bottleneck == 256
    for text, needle in (
        ("base: nope\n", "base nope is not a preset; choose from"),
        ("base: loop.yaml\n", "base loop.yaml leads back to itself"),
        ("base: missing.yaml\n", "base missing.yaml: no such preset file"),
        ("base: 3\n", "base must be a preset name or a YAML path"),
        ("base: tiny\nbottlenek: 5\n", "bottlenek"),
    ):
        path = tmp_path / "loop.yaml"
        path.write_text(text)
        with pytest.raises(FaceswapError, match=needle) as err:
            load_preset(path)
        assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"arch": "gan"}, "choose from df, liae"),
        ({"resolution": 60}, "divisible by 16"),
        ({"encoder_kernel": 4}, "odd"),
        ({"decoder_widths": []}, "non-empty"),
        ({"bottleneck": 0}, "positive"),
    ],
)
def test_inconsistent_values_are_rejected(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(FaceswapError, match=needle):
        ModelConfig(**changes)  # type: ignore[arg-type]


def test_bad_values_in_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text("resolution: 60\n")
    with pytest.raises(FaceswapError, match=str(path)):
        load_preset(path)


def test_round_trip_through_dict_and_scaled() -> None:
    cfg = load_preset("dfl-h128")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    small = scaled(cfg, 1 / 64, resolution=64)
    assert small.resolution == 64 and max(small.encoder_widths) <= 16
    assert small.arch == cfg.arch and small.learned_mask == cfg.learned_mask
