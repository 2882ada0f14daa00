"""discover(): which files a scan sees, in what order, and how it survives hostile folder trees.
Also fingerprint (content identity), the other half of what a rescan reads."""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

import pytest

from aesthete import discover as discover_module
from aesthete.discover import SUPPORTED_EXTENSIONS, FoundFile, discover
from aesthete.fingerprint import content_hash, hash_file


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def scan(*roots: Path | str, **kwargs: object) -> tuple[list[str], list[tuple[str, str]]]:
    errors: list[tuple[str, str]] = []
    paths = [f.path for f in discover(roots, on_error=lambda p, r: errors.append((p, r)), **kwargs)]
    return paths, errors


def test_supported_extensions_case_insensitive_and_sorted(tmp_path: Path) -> None:
    names = ["b.JPG", "a.jpeg", "c.Png", "d.TIFF", "e.tif", "f.webp", "g.bmp", "h.jpe", "i.PNG", "raw.CR2"]
    for name in [*names, "notes.txt", "jpg", "movie.mp4", "photo.jpg.xmp", "IMG_1.xmp"]:
        touch(tmp_path / name)
    paths, errors = scan(tmp_path)
    assert paths == [str(tmp_path / n) for n in sorted(names)]
    assert errors == []
    assert {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp"} <= SUPPORTED_EXTENSIONS


def test_found_file_carries_size_and_mtime(tmp_path: Path) -> None:
    path = touch(tmp_path / "a.jpg", b"12345")
    os.utime(path, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    assert list(discover([tmp_path])) == [FoundFile(str(path), 5, 1_700_000_000_123_456_789)]


def test_depth_first_order_and_absolute_normalised_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for rel in ["b.jpg", "a/z.jpg", "a/b/c.jpg", "c.jpg"]:
        touch(tmp_path / "root" / rel)
    monkeypatch.chdir(tmp_path)
    paths, _ = scan("./root/a/../")
    root = tmp_path / "root"
    assert paths == [str(root / "a/b/c.jpg"), str(root / "a/z.jpg"), str(root / "b.jpg"), str(root / "c.jpg")]


def test_hidden_entries_and_system_folders_are_skipped(tmp_path: Path) -> None:
    keep = touch(tmp_path / "album" / "keep.jpg")
    for rel in [
        ".hidden.jpg",
        ".git/x.jpg",
        "@eaDir/keep.jpg/SYNOFILE_THUMB_XL.jpg",
        "#recycle/x.jpg",
        "$RECYCLE.BIN/x.jpg",
        "System Volume Information/x.jpg",
        ".Trashes/x.jpg",
        "album/.thumbnails/x.jpg",
        "lost+found/x.jpg",
        "__MACOSX/album/._keep.jpg",
        "album/@EADIR/x.jpg",  # NAS folders come from case-insensitive file systems
    ]:
        touch(tmp_path / rel)
    assert scan(tmp_path) == ([str(keep)], [])


def test_explicit_hidden_root_is_honoured(tmp_path: Path) -> None:
    photo = touch(tmp_path / ".private" / "a.jpg")
    assert scan(tmp_path / ".private")[0] == [str(photo)]


def test_directory_named_like_a_photo_is_walked_not_yielded(tmp_path: Path) -> None:
    inner = touch(tmp_path / "trip.jpg" / "inner.png")
    assert scan(tmp_path) == ([str(inner)], [])


def test_not_recursive(tmp_path: Path) -> None:
    top = touch(tmp_path / "top.jpg")
    touch(tmp_path / "sub" / "deep.jpg")
    assert scan(tmp_path, recursive=False) == ([str(top)], [])


def test_custom_extensions(tmp_path: Path) -> None:
    touch(tmp_path / "a.jpg")
    heic = touch(tmp_path / "b.HEIC")
    assert scan(tmp_path, extensions={".heic"})[0] == [str(heic)]


def test_file_roots_missing_roots_and_unsupported_roots(tmp_path: Path) -> None:
    photo = touch(tmp_path / "a.jpg")
    text = touch(tmp_path / "a.txt")
    missing = tmp_path / "missing"
    nul = str(tmp_path / "bad\x00name.jpg")
    paths, errors = scan(photo, text, missing, nul)
    assert paths == [str(photo)]
    assert [p for p, _ in errors] == [str(text), str(missing), nul]
    assert "unsupported" in errors[0][1]


def test_overlapping_roots_and_aliases_yield_each_file_once(tmp_path: Path) -> None:
    a = touch(tmp_path / "lib" / "a.jpg")
    b = touch(tmp_path / "lib" / "sub" / "b.jpg")
    hard = tmp_path / "lib" / "sub" / "hardlink.jpg"
    os.link(a, hard)
    os.symlink(a, tmp_path / "lib" / "sub" / "symlink.jpg")
    os.symlink(hard, tmp_path / "lib" / "sub" / "to_hardlink.jpg")
    os.symlink(tmp_path / "lib" / "sub", tmp_path / "lib" / "alias")
    paths, errors = scan(tmp_path / "lib", tmp_path / "lib" / "sub", a, hard)
    # The first path in walk order wins: 'alias' sorts before 'sub'. The hard link is another real path of a:
    # a name of its own, met (and yielded) once, through the alias.
    alias = tmp_path / "lib" / "alias"
    assert paths == [str(a), str(alias / "b.jpg"), str(alias / "hardlink.jpg")]
    assert sorted(os.path.realpath(p) for p in paths) == sorted([str(a), str(b), str(hard)])
    assert errors == []


def test_symlinked_folders_are_followed(tmp_path: Path) -> None:
    photo = touch(tmp_path / "elsewhere" / "p.jpg")
    (tmp_path / "lib").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "lib" / "linked")
    assert scan(tmp_path / "lib") == ([str(tmp_path / "lib" / "linked" / "p.jpg")], [])
    assert photo.exists()


def test_symlink_loops_terminate_and_are_reported(tmp_path: Path) -> None:
    photo = touch(tmp_path / "lib" / "sub" / "a.jpg")
    os.symlink(tmp_path / "lib", tmp_path / "lib" / "sub" / "up")  # a folder that contains itself
    os.symlink("self.jpg", tmp_path / "lib" / "self.jpg")  # a link to itself: ELOOP
    paths, errors = scan(tmp_path / "lib")
    assert paths == [str(photo)]
    reasons = dict(errors)
    assert "loop" in reasons[str(tmp_path / "lib" / "sub" / "up")]
    assert "loop" in reasons[str(tmp_path / "lib" / "self.jpg")]


def test_dangling_symlink_is_reported_and_skipped(tmp_path: Path) -> None:
    good = touch(tmp_path / "good.jpg")
    os.symlink(tmp_path / "gone.jpg", tmp_path / "broken.jpg")
    paths, errors = scan(tmp_path)
    assert paths == [str(good)]
    assert errors == [(str(tmp_path / "broken.jpg"), "dangling symlink")]
    assert scan(tmp_path / "broken.jpg")[1] == [(str(tmp_path / "broken.jpg"), "dangling symlink")]


def test_unreadable_folder_is_reported_and_the_rest_still_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulated, because permissions do not stop root (as in CI containers)."""
    touch(tmp_path / "locked" / "secret.jpg")
    after = touch(tmp_path / "open" / "fine.jpg")
    real_scandir = os.scandir

    def scandir(path: str | int) -> object:  # (shutil.rmtree, cleaning up after the test, passes a descriptor)
        if isinstance(path, str) and os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(discover_module.os, "scandir", scandir)
    assert scan(tmp_path) == ([str(after)], [(str(tmp_path / "locked"), "Permission denied")])


def test_non_utf8_file_names(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9-\xff.jpg"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"abc")
    os.close(fd)
    [found] = list(discover([tmp_path]))
    assert os.fsencode(found.path) == raw
    assert found.size == 3
    assert hash_file(found.path) == content_hash(b"abc")


def test_deep_trees_do_not_hit_the_recursion_limit(tmp_path: Path) -> None:
    """A tree deeper than the stack allows (the limit is lowered so the tree can stay small)."""
    deep = tmp_path.joinpath(*["d"] * 300)
    deep.mkdir(parents=True)
    photo = touch(deep / "bottom.jpg")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 100)  # a walk that recursed per folder would need 300 more
    try:
        paths = [f.path for f in discover([tmp_path])]
    finally:
        sys.setrecursionlimit(limit)
    assert paths == [str(photo)]


def test_content_hash_is_xxh128_and_streaming_matches(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 123)  # spans several 1 MiB chunks
    path = touch(tmp_path / "big.bin", data)
    digest = content_hash(data)
    assert digest.startswith("xxh128:") and len(digest) == len("xxh128:") + 32
    assert hash_file(path) == digest
    assert content_hash(b"abc") == "xxh128:06b05ab6733a618578af5f94892f3950"  # XXH3-128 reference value
    assert content_hash(data[:-1] + bytes([data[-1] ^ 1])) != digest
    assert hash_file(touch(tmp_path / "empty.jpg", b"")) == content_hash(b"")
