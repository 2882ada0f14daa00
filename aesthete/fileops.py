"""Writing files beside a photographer's library without ever clobbering anything.

Every file aesthete writes whole goes through one atomic write here (:func:`atomic_path`, or
:func:`publish` for a temporary file kept between attempts, like a resumable download): album entries,
manifests, XMP sidecars, HTML reports, checkpoints, the weights cache and registry. The data goes to a
temporary file in the same folder, is flushed to disk (``fsync``), takes its name in one rename (or hard
link), and the folder is flushed too so that the name itself survives a power cut: a crash leaves the old
file or the new one, never half of one, and never an empty file under the new name. A name that is taken
gets a ``name (2).ext`` sibling instead of replacing what is there, the convention of Finder, Explorer and
most file managers.
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Container, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

# Errors meaning "this file system (or this user) cannot hard-link here", as opposed to a real failure.
NO_HARD_LINKS = frozenset({errno.EXDEV, errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})


NAME_MAX = 255  # bytes in a file name on Linux and macOS; 255 bytes are at most 255 UTF-16 units, NTFS's limit


# What os.fsync of a folder raises where the file system cannot flush a folder (some network and FUSE ones).
_NO_DIR_FSYNC = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF})


@contextmanager
def staged(path: str | os.PathLike[str]) -> Iterator[tuple[int, str]]:
    """An open descriptor of a new temporary file beside ``path`` (permissions as for any new file),
    removed afterwards unless :func:`publish` gave it its final name."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    token = secrets.token_hex(4)
    name = f".{os.path.basename(path)}.{token}.tmp"
    if len(os.fsencode(name)) > NAME_MAX:  # a name legal for the file, but too long to dress up as its temporary
        name = f".aesthete.{token}.tmp"
    temporary = os.path.join(folder, name)
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        yield handle, temporary
    finally:
        with suppress(OSError):
            os.close(handle)
        if os.path.lexists(temporary):
            os.unlink(temporary)


def publish(temporary: str | os.PathLike[str], path: str | os.PathLike[str], *, overwrite: bool) -> None:
    """Give a finished file in the same folder its name, durably: flush its data, then rename it (or,
    without ``overwrite``, hard-link it, which fails atomically when the name is taken; file systems
    without hard links check, then rename), then flush the folder so the new name is on disk too.

    With ``overwrite=False`` an existing ``path`` raises :class:`FileExistsError` and is left alone (the
    caller removes ``temporary``, as :func:`staged` does)."""
    temporary, path = os.fspath(temporary), os.fspath(path)
    # POSIX flushes the file through any descriptor (a read-only one works for a copy of a read-only
    # photo, whose permissions copystat has already set); Windows only through one open for writing.
    handle = os.open(temporary, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
    if overwrite:
        os.replace(temporary, path)
    else:
        try:
            os.link(temporary, path)
        except OSError as exc:
            if exc.errno not in NO_HARD_LINKS:
                raise
            if os.path.lexists(path):
                raise FileExistsError(errno.EEXIST, "file exists", path) from None
            os.rename(temporary, path)
    fsync_folder(os.path.dirname(os.path.abspath(path)))


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename in it) to disk, where the platform and file system can."""
    if os.name == "nt":  # Windows cannot open a folder as a file; NTFS journals the rename itself
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    except OSError as exc:
        if exc.errno not in _NO_DIR_FSYNC:
            raise
    finally:
        os.close(handle)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[str]:
    """A temporary path beside ``path`` for the body to write (by name: ``torch.save``, safetensors'
    ``save_file``, a copy); when the body finishes, the file is flushed and given its name by
    :func:`publish`. When the body raises, ``path`` is untouched and the temporary file removed."""
    with staged(path) as (handle, temporary):
        yield temporary
        _mode_as_staged(handle, temporary)
        publish(temporary, path, overwrite=overwrite)


def _mode_as_staged(handle: int, temporary: str) -> None:
    """Give a file that the body wrote in place of the staged one (safetensors' ``save_file`` writes its
    own temporary file, mode 0600, and renames it over the name it is given) the staged file's permissions:
    the umask's, as any new file. A body that wrote into the staged file keeps what it set (copystat)."""
    staged_stat, written = os.fstat(handle), os.stat(temporary)
    if (written.st_dev, written.st_ino) != (staged_stat.st_dev, staged_stat.st_ino):
        os.chmod(temporary, stat.S_IMODE(staged_stat.st_mode))


def atomic_write(path: str | os.PathLike[str], data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_path`); with ``overwrite=False`` an existing
    ``path`` raises :class:`FileExistsError` and is left alone."""
    with atomic_path(path, overwrite=overwrite) as temporary:
        Path(temporary).write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically, replacing what is there."""
    atomic_write(path, text.encode("utf-8"), overwrite=True)


def free_name(
    folder: str, name: str, *, taken: Container[str] = (), reuse: Callable[[str], bool] | None = None
) -> tuple[str, bool]:
    """The first of ``name``, ``name (2)``, ``name (3)``... (before the extension) free in ``folder``.

    Returns (path, reused): a path in ``taken`` is skipped; an existing one is skipped unless ``reuse``
    says it already holds what would be written there, in which case it is returned with ``reused=True``.
    """
    stem, ext = os.path.splitext(name)
    for n in itertools.count(1):
        candidate = os.path.join(folder, name if n == 1 else f"{stem} ({n}){ext}")
        if candidate in taken:
            continue
        if not os.path.lexists(candidate):
            return candidate, False
        if reuse is not None and reuse(candidate):
            return candidate, True
    raise AssertionError("unreachable")


def free_bundle(
    folder: str,
    names: Sequence[str],
    *,
    taken: Container[str] = (),
    reuse: Callable[[int, str], bool] | None = None,
    vacant: Callable[[str], bool] | None = None,
) -> list[tuple[str, bool]]:
    """Paths in ``folder`` for files that must keep one stem: a photo, its RAW companion, their sidecars.

    Every name starts with the stem of ``names[0]`` (up to case); the first ``n`` for which each name,
    with `` (n)`` after that stem, is free (not in ``taken``, and absent or, where ``reuse(i, path)``
    says so, already holding the i-th file, or, where ``vacant(path)`` says so, holding a file the caller
    removes before using the name) wins. Returns a (path, reused) pair per name. The stem is shortened
    where a name would not fit in :data:`NAME_MAX` bytes (a long name given a time prefix).
    """
    cut = len(os.path.splitext(names[0])[0])
    tail = max(len(os.fsencode(name[cut:])) for name in names)
    for n in itertools.count(1):
        mark = "" if n == 1 else f" ({n})"
        keep = cut  # characters of the stem kept
        while keep and len(os.fsencode(names[0][:keep] + mark)) + tail > NAME_MAX:
            keep -= 1
        out = []
        for i, name in enumerate(names):
            candidate = os.path.join(folder, f"{name[:keep]}{mark}{name[cut:]}")
            if candidate in taken:
                break
            if not os.path.lexists(candidate):
                out.append((candidate, False))
            elif reuse is not None and reuse(i, candidate):
                out.append((candidate, True))
            elif vacant is not None and vacant(candidate):
                out.append((candidate, False))
            else:
                break
        else:
            return out
    raise AssertionError("unreachable")


def same_content(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are the same file (a link) or byte-identical files."""
    try:
        if os.path.samefile(a, b):
            return True
        if os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as left, open(b, "rb") as right:
            while True:
                chunk = left.read(1 << 20)
                if chunk != right.read(1 << 20):
                    return False
                if not chunk:
                    return True
    except OSError:
        return False


# ioctl FICLONE = _IOW(0x94, 9, int) from <linux/fs.h>: the destination shares the source's blocks
# copy-on-write (Btrfs, XFS, bcachefs, OCFS2...). os.copy_file_range is no substitute: it may copy.
FICLONE = 0x40049409
# What FICLONE raises where no clone is possible (not Linux-only errors: EXDEV across file systems,
# EOPNOTSUPP/EINVAL on ext4 and tmpfs, ENOTTY where the ioctl is unknown): then a plain copy follows.
_NO_CLONE = frozenset({errno.EXDEV, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOTTY, errno.ENOSYS,
                       errno.EPERM, errno.EBADF})  # fmt: skip


def clone_or_copy(source: str, target: str, *, overwrite: bool = False) -> str:
    """Like :func:`copy_new`, as a copy-on-write clone (reflink) where the file system offers one: no extra
    space, yet ``target`` is its own file (a change to one never reaches the other, unlike a hard link).
    With ``overwrite``, an existing ``target`` is replaced at once. Returns ``"clone"`` or ``"copy"``."""
    with atomic_path(target, overwrite=overwrite) as temporary:
        how = "clone" if _clone(source, temporary) else "copy"
        if how == "copy":
            shutil.copyfile(source, temporary)
        shutil.copystat(source, temporary)
    return how


def _clone(source: str, temporary: str) -> bool:
    """Reflink ``source``'s data into the (empty) ``temporary``; False where the platform or file system
    cannot (macOS's clonefile would need a new name, not a descriptor: macOS copies)."""
    if not sys.platform.startswith("linux"):
        return False
    import fcntl

    with open(source, "rb") as src, open(temporary, "r+b") as dst:
        try:
            fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
        except OSError as exc:
            if exc.errno not in _NO_CLONE:
                raise
            return False
    return True


def copy_new(source: str, target: str) -> None:
    """Copy ``source`` to ``target``, which must not exist, keeping its modification time; ``target``
    never holds a partial photo and an existing file is never replaced."""
    with atomic_path(target, overwrite=False) as temporary:
        shutil.copyfile(source, temporary)
        shutil.copystat(source, temporary)
