"""The CLI group, registries, configs and atomic writes."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from faceswap import __version__
from faceswap.cli import COMMANDS, cli
from faceswap.config import config_from_dict, config_to_dict, load_yaml
from faceswap.errors import FaceswapError
from faceswap.io.files import atomic_path, ensure_writable_dir, write_text_atomic
from faceswap.registry import Registry


def test_help_lists_every_stage() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_console_entry_point_runs_as_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "faceswap", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "extract" in proc.stdout


def test_doctor_reports_torch_ffmpeg_and_backends() -> None:
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    assert "torch" in result.output
    assert "device: cpu" in result.output and "native bf16" in result.output
    assert re.search(
        r"ffmpeg: \S+ \((\d+\.\d+|git build), from (PATH|imageio-ffmpeg)", result.output
    )
    assert "dlib-hog" in result.output
    assert re.search(r"OpenEXR \d+\.\d+", result.output)


def test_registry_lists_valid_names_on_unknown() -> None:
    reg: Registry[int] = Registry("colour mode")
    reg.add("rct", 1)
    reg.add("lct", 2)
    assert reg.get("rct") == 1
    with pytest.raises(FaceswapError, match=r"unknown colour mode 'x'; choose from lct, rct"):
        reg.get("x")
    with pytest.raises(ValueError):
        reg.add("rct", 3)


@dataclasses.dataclass(frozen=True)
class Inner:
    width: int = 4


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str = "tiny"
    lr: float = 1e-4
    sizes: tuple[int, ...] = (1, 2)
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_config_from_dict_builds_nested_and_rejects_unknown() -> None:
    cfg = config_from_dict(Outer, {"lr": 1, "sizes": [3, 4], "inner": {"width": 8}})
    assert cfg == Outer(lr=1.0, sizes=(3, 4), inner=Inner(width=8))
    assert config_to_dict(cfg)["inner"] == {"width": 8}
    with pytest.raises(FaceswapError, match=r"unknown key.*colour.*valid keys: inner, lr"):
        config_from_dict(Outer, {"colour": 1})
    with pytest.raises(FaceswapError, match=r"inner.*unknown key.*depth"):
        config_from_dict(Outer, {"inner": {"depth": 1}})


def test_load_yaml_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(FaceswapError, match="not valid YAML"):
        load_yaml(bad)
    with pytest.raises(FaceswapError, match="no such file"):
        load_yaml(tmp_path / "missing.yaml")


def test_atomic_path_leaves_target_untouched_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    write_text_atomic(target, "good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_unwritable_output_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FaceswapError, match="not a folder"):
        ensure_writable_dir(blocker)


_FREED_MEMORY_SCRIPT = """
import ctypes, os, sys
from faceswap.device import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else False
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
size = 64 * 2**20
block = libc.malloc(size)
ctypes.memset(block, 1, size)
before = rss_mb()
libc.free(ctypes.c_void_p(block))
print(kept, before - rss_mb())
"""


def test_keep_freed_memory_keeps_large_blocks_for_reuse() -> None:
    import platform

    def run(mode: str) -> tuple[bool, float]:
        out = subprocess.run(
            [sys.executable, "-c", _FREED_MEMORY_SCRIPT, mode],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        ).stdout.split()
        return out[0] == "True", float(out[1])

    if not (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"):
        from faceswap.device import keep_freed_memory

        assert keep_freed_memory() is False
        return
    kept, released_mb = run("keep")
    assert kept and released_mb < 8  # the freed 64 MiB stay mapped for the next step
    default_kept, default_released_mb = run("default")
    assert not default_kept and default_released_mb > 56  # glibc's default unmaps them


def test_atomic_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    import os
    import stat

    from faceswap.io.files import make_temp_dir

    umask = os.umask(0o022)
    os.umask(umask)
    write_text_atomic(tmp_path / "out.json", "{}")
    # As open() and mkdir() would create them, not tempfile's private 0600 / 0700.
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o666 & ~umask
    folder = make_temp_dir(tmp_path, ".scratch.")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask


def test_is_disk_full_reads_the_errors_a_full_disk_gives(tmp_path: Path) -> None:
    import errno

    from faceswap.io.files import is_disk_full

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    # safetensors' own error carries the OS error in its text.
    assert is_disk_full(Exception("I/O error: No space left on device (os error 28)"))
    # torch.save says only this; then the folder's free space decides.
    vague = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    assert not is_disk_full(vague) and not is_disk_full(vague, tmp_path)  # the disk has room
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"), tmp_path)
