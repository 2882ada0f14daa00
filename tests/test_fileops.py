"""The one atomic write: data and folder flushed, the old file whole until the rename, no temporary left.

(A sidecar write that dies halfway: tests/test_trust.py. Album entries and name clashes:
tests/test_cull_export.py.)"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from aesthete import fileops


def flushes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record what each os.fsync in fileops flushed: 'file' or 'folder'."""
    seen: list[str] = []
    real = os.fsync

    def record(fd: int) -> None:
        seen.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(fileops.os, "fsync", record)
    return seen


def test_atomic_write_flushes_the_file_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = flushes(monkeypatch)
    target = tmp_path / "a.json"
    fileops.atomic_write(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new"
    assert seen == ["file", "folder"]
    fileops.atomic_write_text(target, "caf\u00e9")
    assert target.read_bytes() == "caf\u00e9".encode()
    assert os.listdir(tmp_path) == ["a.json"]


def test_a_body_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"), fileops.atomic_path(target) as temporary:
        Path(temporary).write_bytes(b"half a fi")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.safetensors"]


@pytest.mark.parametrize("name", ["y" * 250 + ".xmp", "é" * 125 + ".xmp"])  # 254 bytes: legal, as a sidecar
def test_a_name_too_long_to_prefix_is_still_written_atomically(tmp_path: Path, name: str) -> None:
    """The temporary beside a file was '.NAME.xxxxxxxx.tmp', 14 bytes more than NAME: for a photo named near
    the 255-byte limit, `cull --xmp` died with 'File name too long' (field test)."""
    target = tmp_path / name
    fileops.atomic_write(target, b"rating", overwrite=True)
    assert target.read_bytes() == b"rating" and os.listdir(tmp_path) == [name]


def test_without_overwrite_a_taken_name_is_refused_and_kept(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    target.write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        fileops.atomic_write(target, b"ours", overwrite=False)
    assert target.read_bytes() == b"theirs"
    assert os.listdir(tmp_path) == ["manifest.json"]


def test_publish_gives_a_kept_temporary_its_name_durably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    part = tmp_path / "w.pth.part"  # as a resumable download leaves it
    part.write_bytes(b"weights")
    seen = flushes(monkeypatch)
    fileops.publish(part, tmp_path / "w.pth", overwrite=True)
    assert (tmp_path / "w.pth").read_bytes() == b"weights" and not part.exists()
    assert seen == ["file", "folder"]


def test_copying_a_read_only_photo_keeps_its_mode_and_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "photo.jpg"
    source.write_bytes(b"\xff\xd8 a photo")
    os.utime(source, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    source.chmod(0o444)
    album = tmp_path / "album"
    album.mkdir()
    seen = flushes(monkeypatch)
    fileops.copy_new(str(source), str(album / "photo.jpg"))
    copy = album / "photo.jpg"
    assert copy.read_bytes() == source.read_bytes()
    assert copy.stat().st_mtime_ns == 1_600_000_000_000_000_000
    assert stat.S_IMODE(copy.stat().st_mode) == 0o444
    assert seen == ["file", "folder"]
    assert os.listdir(album) == ["photo.jpg"]


def test_a_file_the_body_wrote_in_place_of_the_temporary_gets_the_mode_of_any_new_file(tmp_path: Path) -> None:
    """safetensors' save_file renames its own 0600 temporary over the name it is given: the published
    checkpoint still gets the umask's mode, as torch.save's state.pt and metrics.json do (field test)."""
    import torch
    from safetensors.torch import save_file

    umask = os.umask(0o022)
    os.umask(umask)
    plain = tmp_path / "metrics.json"
    fileops.atomic_write_text(plain, "{}")
    expected = 0o666 & ~umask
    assert stat.S_IMODE(plain.stat().st_mode) == expected
    checkpoint = tmp_path / "model.safetensors"
    with fileops.atomic_path(checkpoint) as temporary:
        save_file({"w": torch.zeros(2)}, temporary)
    assert stat.S_IMODE(checkpoint.stat().st_mode) == expected
    assert sorted(os.listdir(tmp_path)) == ["metrics.json", "model.safetensors"]
