"""Walk folders and list the photo files in them.

The walk is what a rescan pays for before anything else, so it uses ``os.scandir`` (one ``stat`` per
candidate file, none for skipped names) and never touches file contents. It is torch-free and
fail-soft: an unreadable folder, a dangling symlink or a symlink loop is reported through
``on_error`` and the walk goes on. Symlinks are followed, but every real directory is entered at most
once and every real file is yielded once by each of its real paths, so aliases (a symlink, an overlapping
root) and loops cannot produce duplicates. A hard link is another real path of a file: a name the
photographer sees, yielded too (an album ``cull --export --mode link`` made inside the library would
otherwise hide the originals it was walked before; ``cull`` takes it for a copy). Order is deterministic:
roots in the order given, then depth-first with each folder's entries sorted by name.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aesthete.formats import PAIR_PARTNERS, RAW_EXTENSIONS, SUPPORTED_EXTENSIONS

# Folders that NAS boxes, operating systems and archivers fill with thumbnails, trash and metadata.
# Compared case-insensitively, since most of them come from case-insensitive file systems.
SYSTEM_FOLDERS: frozenset[str] = frozenset(
    name.casefold()
    for name in (
        "@eaDir",
        "#recycle",
        "$RECYCLE.BIN",
        "System Volume Information",
        ".Trashes",
        ".thumbnails",
        "lost+found",
        "__MACOSX",
    )
)

ErrorCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class FoundFile:
    """A candidate photo: where it is and the (size, mtime) pair a rescan compares against the cache."""

    path: str
    size: int
    mtime_ns: int


def discover(
    roots: Iterable[str | Path],
    *,
    recursive: bool = True,
    extensions: Iterable[str] = SUPPORTED_EXTENSIONS,
    on_error: ErrorCallback | None = None,
) -> Iterator[FoundFile]:
    """Yield every supported photo under ``roots`` (files or folders), each real file once.

    Hidden entries (name starting with ``.``) and :data:`SYSTEM_FOLDERS` are skipped inside folders;
    a root named explicitly is always honoured. A file root with an unsupported extension, a missing
    root, a dangling symlink, a symlink loop and an unreadable folder are reported as
    ``on_error(path, reason)`` and skipped.
    """
    walker = _Walker({ext.lower() for ext in extensions}, recursive, on_error or _ignore)
    for root in roots:
        yield from walker.root(os.path.abspath(os.fspath(root)))


def _ignore(path: str, reason: str) -> None:
    """Default error callback: skip silently."""


class _Walker:
    """State shared across roots: what has been seen, so overlapping roots yield nothing twice."""

    def __init__(self, extensions: set[str], recursive: bool, on_error: ErrorCallback) -> None:
        self.extensions = extensions
        self.recursive = recursive
        self.on_error = on_error
        self.seen_files: dict[tuple[int, int], list[str]] = {}  # (st_dev, st_ino) -> the paths yielded for it
        self.seen_dirs: set[tuple[int, int]] = set()

    def root(self, path: str) -> Iterator[FoundFile]:
        try:
            st = os.stat(path)
        except OSError as exc:
            self.on_error(path, _reason(exc, os.path.islink(path)))
            return
        except ValueError as exc:  # e.g. an embedded NUL: no such file can exist
            self.on_error(path, str(exc))
            return
        if stat.S_ISDIR(st.st_mode):
            yield from self.walk(path, st)
        elif not stat.S_ISREG(st.st_mode):
            self.on_error(path, "not a regular file")
        elif os.path.splitext(path)[1].lower() not in self.extensions:
            self.on_error(path, "unsupported file type")
        else:
            found = self.file(path, st)
            if found is not None:
                yield found

    def file(self, path: str, st: os.stat_result) -> FoundFile | None:
        key = (st.st_dev, st.st_ino)
        yielded = self.seen_files.get(key)
        if yielded is None:
            self.seen_files[key] = [path]
        else:  # a file met again: real paths (resolved only here, where it is rare) tell an alias from a hard link
            real = os.path.realpath(path)
            if any(os.path.realpath(other) == real for other in yielded):
                return None
            yielded.append(path)
        return FoundFile(path, st.st_size, st.st_mtime_ns)

    def walk(self, top: str, top_stat: os.stat_result) -> Iterator[FoundFile]:
        """Depth-first walk with an explicit stack (deep trees cannot hit the recursion limit).

        Each stack frame is a folder's sorted entry iterator; meeting a subfolder pushes its frame and
        breaks out, and the parent's iterator resumes where it stopped once the subfolder is done.
        Only candidate photos and folders are stat'ed: the entry type comes free with ``scandir``.
        """
        key = (top_stat.st_dev, top_stat.st_ino)
        if key in self.seen_dirs:
            return
        self.seen_dirs.add(key)
        entries = self.list_dir(top)
        if entries is None:
            return
        ancestors = {key}
        stack = [(key, iter(entries))]
        extensions = self.extensions
        while stack:
            dir_key, it = stack[-1]
            for entry in it:
                name = entry.name
                if name.startswith("."):
                    continue
                st: os.stat_result | None = None
                if entry.is_symlink():  # resolve now: a link may point at a folder, a file, or nowhere
                    try:
                        st = entry.stat()
                    except OSError as exc:
                        self.on_error(entry.path, _reason(exc, is_link=True))
                        continue
                    is_dir = stat.S_ISDIR(st.st_mode)
                else:
                    is_dir = entry.is_dir(follow_symlinks=False)
                if is_dir:
                    if not self.recursive or name.casefold() in SYSTEM_FOLDERS:
                        continue
                    sub = self.enter(entry, st, ancestors)
                    if sub is not None:
                        stack.append(sub)
                        ancestors.add(sub[0])
                        break
                    continue
                dot = name.rfind(".")
                if dot <= 0 or name[dot:].lower() not in extensions:
                    continue
                if st is None:
                    try:
                        st = entry.stat()
                    except OSError as exc:
                        self.on_error(entry.path, _reason(exc))
                        continue
                if stat.S_ISREG(st.st_mode):  # not a FIFO or device that happens to be named .jpg
                    found = self.file(entry.path, st)
                    if found is not None:
                        yield found
            else:
                stack.pop()
                ancestors.discard(dir_key)

    def enter(
        self, entry: os.DirEntry[str], st: os.stat_result | None, ancestors: set[tuple[int, int]]
    ) -> tuple[tuple[int, int], Iterator[os.DirEntry[str]]] | None:
        """The stack frame for a subfolder, or ``None`` when it must not be walked (again)."""
        try:
            st = st or entry.stat()
        except OSError as exc:
            self.on_error(entry.path, _reason(exc))
            return None
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            self.on_error(entry.path, "symlink loop (points to a folder that contains it)")
            return None
        if key in self.seen_dirs:
            return None  # an alias of a folder already walked: its files were yielded there
        self.seen_dirs.add(key)
        entries = self.list_dir(entry.path)
        return None if entries is None else (key, iter(entries))

    def list_dir(self, path: str) -> list[os.DirEntry[str]] | None:
        """A folder's entries sorted by name, or ``None`` (reported) when it cannot be read."""
        try:
            with os.scandir(path) as it:
                return sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.on_error(path, _reason(exc))
            return None


def skipped_by_walk(path: str | Path) -> tuple[str, str] | None:
    """Why a walk of a folder above ``path`` never reaches it: ``(kind, name)``, kind one of "hidden file",
    "hidden folder", "system folder" (the names :meth:`_Walker.walk` skips), for the one nearest the file;
    None when nothing on the way is skipped. Naming the file (or that folder) as a root reads it all the same."""
    *folders, name = Path(os.path.abspath(path)).parts[1:]
    if name.startswith("."):
        return "hidden file", name
    for folder in reversed(folders):
        if folder.startswith("."):
            return "hidden folder", folder
        if folder.casefold() in SYSTEM_FOLDERS:
            return "system folder", folder
    return None


def pair_raws(found: Iterable[FoundFile]) -> tuple[list[FoundFile], list[tuple[FoundFile, str]]]:
    """Split ``found`` into photos and RAW companions: ``(photos, [(raw file, partner path)])``.

    A RAW file whose folder holds a camera rendering of the same frame (same stem, compared
    case-insensitively, with an extension of :data:`~aesthete.formats.PAIR_PARTNERS`) is one photo with
    it: the rendering is decoded and scored (cheaper than a RAW's container and no worse than its
    embedded preview), the RAW follows it into groups, exports and sidecars. Names alone decide, so
    pairing costs no file access.
    """
    found = list(found)
    partners: dict[tuple[str, str], tuple[int, str]] = {}  # (folder, stem) -> (rank, path) of the best partner
    for entry in found:
        folder, name = os.path.split(entry.path)
        stem, ext = os.path.splitext(name)
        rank = PAIR_PARTNERS.index(ext.lower()) if ext.lower() in PAIR_PARTNERS else None
        key = (folder, stem.casefold())
        if rank is not None and (key not in partners or (rank, entry.path) < partners[key]):
            partners[key] = (rank, entry.path)
    photos, companions = [], []
    for entry in found:
        folder, name = os.path.split(entry.path)
        stem, ext = os.path.splitext(name)
        partner = partners.get((folder, stem.casefold()))
        if partner is not None and ext.lower() in RAW_EXTENSIONS:
            companions.append((entry, partner[1]))
        else:
            photos.append(entry)
    return photos, companions


def _reason(exc: OSError, is_link: bool = False) -> str:
    """A one-line reason without the path (the callback receives the path separately)."""
    if is_link and exc.errno == errno.ENOENT:
        return "dangling symlink"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return exc.strerror or type(exc).__name__
