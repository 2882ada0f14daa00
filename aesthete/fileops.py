"""Writing files beside a photographer's library without ever clobbering anything.

Everything ``cull`` and ``report`` write (album entries, manifests, XMP sidecars, HTML) goes through
these helpers: a write is atomic (a temporary file in the same folder, then a rename), so a crash
leaves the old file or the new one, never half of one; and a name that is taken gets a ``name (2).ext``
sibling instead of replacing what is there, the convention of Finder, Explorer and most file managers.
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
import shutil
from collections.abc import Callable, Container, Iterator, Sequence
from contextlib import contextmanager, suppress

# Errors meaning "this file system (or this user) cannot hard-link here", as opposed to a real failure.
NO_HARD_LINKS = frozenset({errno.EXDEV, errno.EPERM, errno.EACCES, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK})


@contextmanager
def _staged(path: str) -> Iterator[tuple[int, str]]:
    """An open descriptor of a new temporary file beside ``path`` (permissions as for any new file),
    removed afterwards unless :func:`_publish` gave it its final name."""
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        yield handle, temporary
    finally:
        with suppress(OSError):
            os.close(handle)
        if os.path.lexists(temporary):
            os.unlink(temporary)


def _publish(temporary: str, path: str, *, overwrite: bool) -> None:
    """Give the finished temporary file its name. Without ``overwrite`` it is hard-linked into place,
    which fails atomically when the name is taken; file systems without hard links check, then rename."""
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "file exists", path) from None
        os.rename(temporary, path)


def atomic_write(path: str, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename; with ``overwrite=False`` an
    existing ``path`` raises :class:`FileExistsError` and is left alone."""
    with _staged(path) as (handle, temporary):
        with os.fdopen(os.dup(handle), "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        _publish(temporary, path, overwrite=overwrite)


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
) -> list[tuple[str, bool]]:
    """Paths in ``folder`` for files that must keep one stem: a photo, its RAW companion, their sidecars.

    Every name starts with the stem of ``names[0]`` (up to case); the first ``n`` for which each name,
    with `` (n)`` after that stem, is free (not in ``taken``, and absent or, where ``reuse(i, path)``
    says so, already holding the i-th file) wins. Returns a (path, reused) pair per name.
    """
    cut = len(os.path.splitext(names[0])[0])
    for n in itertools.count(1):
        out = []
        for i, name in enumerate(names):
            candidate = os.path.join(folder, name if n == 1 else f"{name[:cut]} ({n}){name[cut:]}")
            if candidate in taken:
                break
            if not os.path.lexists(candidate):
                out.append((candidate, False))
            elif reuse is not None and reuse(i, candidate):
                out.append((candidate, True))
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


def copy_new(source: str, target: str) -> None:
    """Copy ``source`` to ``target``, which must not exist, keeping its modification time; ``target``
    never holds a partial photo and an existing file is never replaced."""
    with _staged(target) as (_, temporary):
        shutil.copyfile(source, temporary)
        shutil.copystat(source, temporary)
        _publish(temporary, target, overwrite=False)
