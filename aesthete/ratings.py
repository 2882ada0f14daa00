"""The photographer's own ratings, read (never written) from where photo managers keep them.

Every reader returns :class:`Rating` records: the photo's path as the source names it, ``rating``
(-1 rejected, 0 unrated, 1-5 stars: the ``xmp:Rating`` convention of the XMP basic schema), ``pick``
(1 picked, -1 rejected, 0 neither; only Lightroom and darktable have a reject apart from stars),
``label`` (a colour label's name, or None) and ``source``.

Sources and where each schema was checked (the public source of each program; the tests build
catalogs with these exact table and column names):

- XMP: ``photo.ext.xmp`` (darktable / digiKam naming), Adobe's ``photo.xmp``, and the XMP packet
  embedded in JPEG (APP1, ``http://ns.adobe.com/xap/1.0/``) and TIFF / DNG (tag 700, XMLPacket).
- Lightroom Classic ``.lrcat`` (SQLite): ``Adobe_images.rating`` (NULL when unrated), ``.pick``
  (1 / 0 / -1), ``.colorLabels`` and ``.rootFile`` -> ``AgLibraryFile(id_local, folder, baseName,
  extension)`` -> ``AgLibraryFolder(id_local, rootFolder, pathFromRoot)`` -> ``AgLibraryRootFolder(id_local,
  absolutePath)``. Adobe publishes no schema; these names are the ones every public reader of lrcat files
  joins on (e.g. the catalog queries quoted in GitHub code search: "JOIN AgLibraryFile file ON
  file.id_local = ai.rootFile JOIN AgLibraryFolder folder ON folder.id_local = file.folder JOIN
  AgLibraryRootFolder ..."), and ``absolutePath`` / ``pathFromRoot`` end with ``/``. A virtual copy is another
  ``Adobe_images`` row on the same ``rootFile`` with ``masterImage`` set (hfiguiere/lrcat-extractor,
  ``doc/lrcat_format.md``): only masters are read, as a copy's stars judge its edit.
- darktable ``library.db``: ``images(id, film_id, filename, flags)``, ``film_rolls(id, folder)``,
  ``color_labels(imgid, color)`` (darktable ``src/common/database.c``, ``_create_library_schema``).
  Stars are ``flags & 7`` (``DT_VIEW_RATINGS_MASK``). The reject changed with library schema version 29:
  before it, a reject was the star value 6 (``DT_VIEW_REJECT``); the upgrade to 29 runs ``UPDATE
  main.images SET flags = (flags | 8) & ~7 WHERE (flags & 7) = 6``, so current versions keep the reject
  in its own bit ``DT_IMAGE_REJECTED = 8`` (``src/common/image.h``). Both are read as a reject, whatever
  the version, since a catalog never upgraded still has the old form. Colour numbers 0-4 are red,
  yellow, green, blue, purple (``src/common/colorlabels.h``). A duplicate is another ``images`` row on
  the same file with a higher ``version`` (a column since darktable's schema upgrades in ``database.c``):
  only the lowest version of each file is read.
- digiKam ``digikam4.db``: ``ImageInformation(imageid, rating)`` (-1 = no rating, 0-5 stars),
  ``Images(id, album, name)``, ``Albums(id, albumRoot, relativePath)``, ``AlbumRoots(id, identifier,
  specificPath)`` (digiKam ``core/data/database/dbconfig.xml.cmake.in``; the same tables in its test
  database ``tests/databases/19/sqlite_digikam4.db.sql``). digiKam's pick and colour labels are tags,
  not columns; they are not read. ``specificPath`` is relative to the volume named by ``identifier``;
  for the root volume that is the absolute path, and an identifier ``volumeid:?path=...`` names its
  mount point; other volumes are found by the moved-root matching below.

SQLite catalogs are opened through a ``file:...?mode=ro`` URI with ``PRAGMA query_only``: SQLite then
refuses any write, and a reader in rollback-journal mode creates no file beside the catalog. They
are not opened ``immutable=1``: that tells SQLite the file cannot change, which is false while
Lightroom, darktable or digiKam has it open, and would let it read a half-written state. The one
exception is a catalog in WAL mode with no ``-wal`` file beside it: no program has it open (SQLite keeps
that file while any connection is open, and its last connection folds it back into the catalog), every
committed change is in the catalog itself, and a plain read-only open would create ``-wal`` and ``-shm``
files beside it. That is opened ``immutable=1``, which creates nothing.

Matching (:func:`match_ratings`): a rating is tied to the photo aesthete scanned by its path; when that
path is unknown but the file is there (a copy aesthete scanned elsewhere), by its content hash
(:mod:`aesthete.fingerprint`), and not at all when aesthete never scanned that content; when the
catalog's root moved (the path no longer exists), by the longest unambiguous path suffix among the
scanned photos, which again lands on a content hash.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from aesthete.errors import AestheteError
from aesthete.fingerprint import hash_file
from aesthete.store import now_iso, path_key, real_path
from aesthete.xmp import LABEL, MARKED, MAX_SIDECAR_BYTES, RATING, Marks, descriptions, property_values

if TYPE_CHECKING:
    from aesthete.store import Store

SOURCES = ("xmp", "lightroom", "darktable", "digikam")
DARKTABLE_COLOURS = ("Red", "Yellow", "Green", "Blue", "Purple")  # src/common/colorlabels.h, 0..4
_XMP_APP1 = b"http://ns.adobe.com/xap/1.0/\x00"
_TIFF_XMP_TAG = 700
_EMBEDDED = (".jpg", ".jpeg", ".tif", ".tiff", ".dng")
# A path a catalog made on Windows: a drive (``D:\``, ``D:/``, ``P:``) or a share (``\\nas\photos``).
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:(?:[\\/]|$)|\\\\)")


class RatingsError(AestheteError):
    """A ratings source that cannot be read; the message says which and why, in one line."""


@dataclass(frozen=True)
class Rating:
    path: str
    rating: int  # -1 rejected, 0 unrated, 1..5 stars
    pick: int = 0  # 1 picked, -1 rejected, 0 neither
    label: str | None = None
    source: str = "xmp"

    @property
    def rejected(self) -> bool:
        return self.rating < 0 or self.pick < 0

    @property
    def judged(self) -> bool:
        """Whether this says anything at all (a star, a pick or a reject)."""
        return self.rating != 0 or self.pick != 0


# ------------------------------------------------------------------------------------------------ XMP


def parse_xmp(data: bytes) -> tuple[int | None, str | None]:
    """(``xmp:Rating``, ``xmp:Label``) of an XMP packet; (None, None) when it has neither or does not parse.

    A rating outside -1..5 or not a number is treated as absent: it is not something a photo manager
    wrote. ``Rating="3.0"`` (some tools write reals) reads as 3."""
    rating, label, _ = _parse_xmp(data)
    return rating, label


def _parse_xmp(data: bytes) -> tuple[int | None, str | None, str | None]:
    """:func:`parse_xmp`, and why a packet that says nothing usable was not read (None when it was, or
    when it simply holds no rating): what ``learn`` tells the photographer about a damaged sidecar."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:  # XMP never declares them; refuse entity tricks
        return None, None, "declares entities, which XMP never does"
    start = data.find(b"<x:xmpmeta")
    if start < 0:
        start = data.find(b"<rdf:RDF")
    if start > 0:
        data = data[start:]
    end = data.rfind(b">")
    try:
        root = ET.fromstring(data[: end + 1])
    except ET.ParseError:
        return None, None, "does not parse as XML"
    if descriptions(root) is None:
        return None, None, "has no rdf:RDF"
    rating: int | None = None
    values = property_values(root, RATING)
    for text in values:
        try:
            value = float(text)
        except ValueError:
            continue
        if value.is_integer() and -1 <= value <= 5:
            rating = int(value)
            break
    labels = [t for t in property_values(root, LABEL) if t]
    problem = f"xmp:Rating {values[0]!r} is not -1..5" if values and rating is None else None
    return rating, labels[0] if labels else None, problem


def embedded_xmp(path: str) -> bytes | None:
    """The XMP packet inside a JPEG (APP1) or TIFF / DNG (IFD0 tag 700), without decoding any pixel."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(4)
            if head[:2] == b"\xff\xd8":
                stream.seek(2)  # just past SOI: the segments follow
                return _jpeg_xmp(stream)
            if head in (b"II*\x00", b"MM\x00*"):
                return _tiff_xmp(stream, "<" if head[:2] == b"II" else ">")
    except (OSError, struct.error):
        return None
    return None


def _jpeg_xmp(stream: Any) -> bytes | None:
    while True:
        marker = stream.read(2)
        if len(marker) < 2 or marker[0] != 0xFF or marker[1] in (0xDA, 0xD9):  # start of scan / end: no more
            return None
        if 0xD0 <= marker[1] <= 0xD7 or marker[1] == 0x01:  # markers without a length
            continue
        (length,) = struct.unpack(">H", stream.read(2))
        if marker[1] == 0xE1 and length > len(_XMP_APP1) + 2:
            payload = stream.read(length - 2)
            if payload.startswith(_XMP_APP1):
                return payload[len(_XMP_APP1) :]
        else:
            stream.seek(length - 2, os.SEEK_CUR)


def _tiff_xmp(stream: Any, order: str) -> bytes | None:
    (offset,) = struct.unpack(order + "I", stream.read(4))
    stream.seek(offset)
    (count,) = struct.unpack(order + "H", stream.read(2))
    for _ in range(min(count, 4096)):
        tag, kind, n, value = struct.unpack(order + "HHI4s", stream.read(12))
        if tag == _TIFF_XMP_TAG and kind in (1, 7) and 0 < n <= MAX_SIDECAR_BYTES:
            if n <= 4:
                return value[:n]
            stream.seek(struct.unpack(order + "I", value)[0])
            return stream.read(n)
    return None


def xmp_candidates(photo: str) -> list[str]:
    """The sidecars a photo manager may have written for ``photo``: ``photo.ext.xmp`` and ``photo.xmp``."""
    return [photo + ".xmp", os.path.splitext(photo)[0] + ".xmp"]


@dataclass
class XmpTrouble:
    """What :func:`read_xmp_reporting` found wrong: sidecars that say nothing usable (path -> why), and
    photos whose sidecars disagree on the rating (photo -> the ratings, the one used first)."""

    unreadable: dict[str, str] = field(default_factory=dict)
    disagreeing: dict[str, list[int]] = field(default_factory=dict)

    def notes(self) -> list[str]:
        """One line each, naming the first case by path: a photographer can open that file and see."""
        out = []
        if self.unreadable:
            path, why = min(self.unreadable.items())
            out.append(f"{len(self.unreadable)} sidecar(s) could not be read and were left out (first: {path}: {why})")
        if self.disagreeing:
            photo, said = min(self.disagreeing.items())
            out.append(
                f"{len(self.disagreeing)} photo(s) have sidecars that disagree; the one written last was used "
                f"(first: {photo}: {said[0]}, the other said {', '.join(map(str, said[1:]))})"
            )
        return out


def read_xmp(photos: Iterable[str]) -> list[Rating]:
    """Each photo's rating from its sidecars or its embedded XMP, for photos that have one.

    When several say something, the sidecar written last wins (an editor writes its sidecar on every
    change), and any sidecar wins over the embedded packet (which is usually what the camera or an
    export wrote). Adobe's ``photo.xmp`` is read for every photo, not only RAW files: whatever wrote it
    meant this frame."""
    return read_xmp_reporting(photos)[0]


def read_xmp_reporting(photos: Iterable[str]) -> tuple[list[Rating], XmpTrouble]:
    """:func:`read_xmp`, and the sidecars it could not read or that disagree (:class:`XmpTrouble`)."""
    out, trouble = [], XmpTrouble()
    for photo in photos:
        found: list[tuple[float, int | None, str | None, str]] = []
        for sidecar in xmp_candidates(photo):
            try:
                stat = os.stat(sidecar)
                if stat.st_size > MAX_SIDECAR_BYTES:
                    trouble.unreadable[sidecar] = f"is over {MAX_SIDECAR_BYTES} bytes"
                    continue
                with open(sidecar, "rb") as stream:
                    rating, label, problem = _parse_xmp(stream.read())
            except FileNotFoundError:
                continue
            except OSError as exc:
                trouble.unreadable[sidecar] = f"cannot be opened ({exc.strerror})"
                continue
            if problem:
                trouble.unreadable[sidecar] = problem
            if rating is not None or label is not None:
                found.append((stat.st_mtime, rating, label, "xmp"))
        if not found and photo.lower().endswith(_EMBEDDED):
            packet = embedded_xmp(photo)
            if packet:
                rating, label = parse_xmp(packet)
                if rating is not None or label is not None:
                    found.append((0.0, rating, label, "xmp-embedded"))
        if found:
            found.sort(key=lambda f: f[0], reverse=True)
            _, rating, label, source = found[0]
            said = [found[0][1] or 0] + [f[1] for f in found[1:] if f[1] is not None]  # a label-only one says no star
            if len(set(said)) > 1:
                trouble.disagreeing[photo] = said
            rating = rating or 0
            out.append(Rating(photo, rating, -1 if rating < 0 else 0, label, source))
    return out, trouble


# --------------------------------------------------------------------------------------------- SQLite


def catalog_path(*parts: str) -> str:
    r"""A photo's path from a catalog's pieces (root, folders, name). A catalog written on Windows keeps
    Windows paths (darktable ``D:\Pictures\2024``, Lightroom ``C:/Users/...``): their backslashes become
    ``/``, so the moved-root matching compares the folders one by one. Joined as they are, ``D:\Pictures\2024``
    would be one folder name here, and photos of one name in two folders could not be told apart."""
    if _WINDOWS_PATH.match(parts[0]):
        parts = tuple(part.replace("\\", "/") for part in parts)
    return os.path.normpath(os.path.join(*parts))


def open_catalog(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """A read-only connection to another program's SQLite catalog (see the module docstring)."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise RatingsError(f"{path}: no such catalog file")
    closed_wal = _in_wal_mode(path) and not os.path.exists(path + "-wal")
    uri = "file:" + quote(path) + ("?immutable=1" if closed_wal else "?mode=ro")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5)
        conn.execute("PRAGMA query_only = 1")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        hint = ""
        if "locked" in str(exc):
            hint = "; close the program that has it open, or read a copy"
        elif os.path.exists(path + "-journal"):  # a hot journal: its writer stopped mid-change
            hint = "; the journal beside it says its program stopped mid-change: open it there once, or read a copy"
        raise RatingsError(f"{path}: cannot read it as SQLite ({exc}){hint}") from None
    return conn


def _in_wal_mode(path: str) -> bool:
    """Whether the SQLite file's header says WAL mode (its read and write format versions, bytes 18-19, are 2)."""
    try:
        with open(path, "rb") as stream:
            header = stream.read(20)
    except OSError:
        return False
    return header.startswith(b"SQLite format 3\x00") and header[18:20] == b"\x02\x02"


# A table only that program's catalog has -> (the --from value, what it is called).
_KINDS = {
    "Adobe_images": ("lightroom", "Lightroom Classic catalog"),
    "film_rolls": ("darktable", "darktable library"),
    "ImageInformation": ("digikam", "digiKam database"),
}


def _kind_of(conn: sqlite3.Connection) -> tuple[str, str] | None:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return next((kind for table, kind in _KINDS.items() if table in tables), None)


def catalog_kind(path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """(the ``--from`` value, its name) of the catalog at ``path``, told by its tables; None for a file that
    is not SQLite, cannot be read now, or is none of the three programs'. Opened read-only, as every catalog."""
    try:
        with open(path, "rb") as stream:
            if not stream.read(16).startswith(b"SQLite format 3"):
                return None
        conn = open_catalog(path)
    except (OSError, RatingsError):
        return None
    try:
        return _kind_of(conn)
    except sqlite3.DatabaseError:
        return None
    finally:
        conn.close()


def _require(conn: sqlite3.Connection, path: str, what: str, tables: dict[str, Sequence[str]]) -> None:
    for table, columns in tables.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        missing = [c for c in columns if c not in have]
        if missing:
            where = f"{table}.{missing[0]}" if have else f"table {table}"
            # The catalog of another of the programs (`--from darktable cat.lrcat`): say which --from reads it.
            kind = _kind_of(conn)
            other = f"; it is a {kind[1]}: --from {kind[0]}" if kind and kind[1] != what else ""
            raise RatingsError(f"{path}: not a {what} (no {where}){other}")


def _query(
    path: str | os.PathLike[str], what: str, tables: dict[str, Sequence[str]], sql: str | Callable[[set[str]], str]
) -> list[tuple]:
    """The rows of ``sql`` once ``tables`` are there; a callable gets the columns of the first table (for
    a column that older versions lack)."""
    conn = open_catalog(path)
    try:
        _require(conn, str(path), what, tables)
        if callable(sql):
            sql = sql({row[1] for row in conn.execute(f"PRAGMA table_info({next(iter(tables))})")})
        return conn.execute(sql).fetchall()
    except sqlite3.DatabaseError as exc:
        raise RatingsError(f"{path}: cannot read the {what} ({exc})") from None
    finally:
        conn.close()


def read_lightroom(catalog: str | os.PathLike[str]) -> list[Rating]:
    """Ratings, picks and colour labels from a Lightroom Classic catalog (``.lrcat``)."""
    rows = _query(
        catalog,
        "Lightroom Classic catalog",
        {
            "Adobe_images": ("id_local", "rootFile", "rating", "pick", "colorLabels"),
            "AgLibraryFile": ("id_local", "folder", "baseName", "extension"),
            "AgLibraryFolder": ("id_local", "rootFolder", "pathFromRoot"),
            "AgLibraryRootFolder": ("id_local", "absolutePath"),
        },
        lambda columns: (
            "SELECT root.absolutePath, folder.pathFromRoot, file.baseName, file.extension, "
            "image.rating, image.pick, image.colorLabels FROM Adobe_images image "
            "JOIN AgLibraryFile file ON file.id_local = image.rootFile "
            "JOIN AgLibraryFolder folder ON folder.id_local = file.folder "
            "JOIN AgLibraryRootFolder root ON root.id_local = folder.rootFolder"
            # A virtual copy is another Adobe_images row on the same file (masterImage names its master): its
            # stars judge that edit (a crop, black and white), not the photo aesthete scored, and used to
            # override the master's as "the last rating of that content". Masters only.
            + (" WHERE image.masterImage IS NULL" if "masterImage" in columns else "")
        ),
    )
    out = []
    for root, sub, base, ext, rating, pick, label in rows:
        name = f"{base}.{ext}" if ext else base
        path = catalog_path(root or "", sub or "", name)
        pick = int(pick or 0)
        out.append(Rating(path, int(rating or 0), max(-1, min(1, pick)), label or None, "lightroom"))
    return out


def read_darktable(library: str | os.PathLike[str]) -> list[Rating]:
    """Stars, rejects and colour labels from a darktable ``library.db``."""
    tables: dict[str, Sequence[str]] = {
        "images": ("id", "film_id", "filename", "flags"),
        "film_rolls": ("id", "folder"),
    }
    rows = _query(
        library,
        "darktable library",
        tables,
        lambda columns: (
            "SELECT i.id, f.folder, i.filename, i.flags FROM images i JOIN film_rolls f ON f.id = i.film_id"
            # A duplicate is another images row on the same file (`version` 1, 2, ...): its stars judge that
            # edit, as a Lightroom virtual copy's. The lowest version left speaks for the photo.
            + (
                " WHERE i.version IS NULL OR i.version = (SELECT MIN(d.version) FROM images d "
                "WHERE d.film_id = i.film_id AND d.filename = i.filename)"
                if "version" in columns
                else ""
            )
        ),
    )
    labels: dict[int, list[str]] = {}
    conn = open_catalog(library)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'color_labels'").fetchone():
            for imgid, colour in conn.execute("SELECT imgid, color FROM color_labels ORDER BY imgid, color"):
                if 0 <= colour < len(DARKTABLE_COLOURS):
                    labels.setdefault(imgid, []).append(DARKTABLE_COLOURS[colour])
    finally:
        conn.close()
    out = []
    for imgid, folder, filename, flags in rows:
        flags = int(flags or 0)
        stars = flags & 7
        # DT_IMAGE_REJECTED (8) since library schema 29; the star value 6 (DT_VIEW_REJECT) before it.
        rejected = bool(flags & 8) or stars == 6
        rating = -1 if rejected else min(stars, 5)
        label = ",".join(labels[imgid]) if imgid in labels else None
        path = catalog_path(folder, filename)
        out.append(Rating(path, rating, -1 if rejected else 0, label, "darktable"))
    return out


def _digikam_root(identifier: str | None, specific: str) -> str:
    """The folder of a digiKam album root: its ``volumeid:?path=`` folder or a network share's
    ``networkshareid:?mountpath=``, else the root volume."""
    query = parse_qs(urlsplit(identifier or "").query)
    base = (query.get("path") or query.get("mountpath") or ["/"])[0]
    return os.path.join(base, specific.lstrip("/")) if specific else base


def read_digikam(database: str | os.PathLike[str]) -> list[Rating]:
    """Star ratings from a digiKam ``digikam4.db`` (-1, digiKam's 'no rating', reads as unrated)."""
    rows = _query(
        database,
        "digiKam database",
        {
            "ImageInformation": ("imageid", "rating"),
            "Images": ("id", "album", "name"),
            "Albums": ("id", "albumRoot", "relativePath"),
            "AlbumRoots": ("id", "identifier", "specificPath"),
        },
        "SELECT r.identifier, r.specificPath, a.relativePath, i.name, info.rating FROM ImageInformation info "
        "JOIN Images i ON i.id = info.imageid JOIN Albums a ON a.id = i.album "
        "JOIN AlbumRoots r ON r.id = a.albumRoot",
    )
    out = []
    for identifier, specific, relative, name, rating in rows:
        path = catalog_path(_digikam_root(identifier, specific or ""), (relative or "/").lstrip("/"), name)
        stars = int(rating) if rating is not None and 0 <= int(rating) <= 5 else 0
        out.append(Rating(path, stars, 0, None, "digikam"))
    return out


def read_source(source: str, where: str | os.PathLike[str] | Sequence[str]) -> list[Rating]:
    """Ratings from one source: ``xmp`` with photo paths, or a catalog kind with its file."""
    if source == "xmp":
        return read_xmp([where] if isinstance(where, (str, os.PathLike)) else list(where))  # type: ignore[list-item]
    readers = {"lightroom": read_lightroom, "darktable": read_darktable, "digikam": read_digikam}
    if source not in readers:
        raise RatingsError(f"unknown ratings source {source!r}; use one of {', '.join(SOURCES)}")
    return readers[source](where)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ matching


@dataclass
class Matched:
    content_hash: str
    path: str  # the scanned photo's path
    rating: Rating
    how: str  # path | hash | suffix


@dataclass
class MatchResult:
    matched: list[Matched]
    unmatched: list[Rating]  # a photo aesthete has not scanned, or one it cannot tell apart


def match_ratings(ratings: Sequence[Rating], store: Store) -> MatchResult:
    """Tie each rating to a photo aesthete scanned (see the module docstring for the three ways)."""
    rows = store.conn.execute(
        "SELECT path, raw_path, content_hash FROM files WHERE status = 'ok' AND content_hash IS NOT NULL"
    ).fetchall()
    by_path = {real_path(p, raw): h for p, raw, h in rows}
    by_hash: dict[str, str] = {}
    by_name: dict[str, list[str]] = {}
    for path, content_hash in by_path.items():
        by_hash.setdefault(content_hash, path)
        by_name.setdefault(os.path.basename(path), []).append(path)
    matched, unmatched = [], []
    for rating in ratings:
        path = os.path.abspath(rating.path)
        if path in by_path:
            matched.append(Matched(by_path[path], path, rating, "path"))
            continue
        if os.path.exists(path):
            # The rated file is there: it is a photo aesthete scanned under another path (a copy), or one it
            # never scanned. Never a scanned photo that only shares its name: cameras reuse file names.
            try:
                content_hash = hash_file(path)
            except OSError:
                content_hash = ""
            if content_hash in by_hash:
                matched.append(Matched(content_hash, by_hash[content_hash], rating, "hash"))
            else:
                unmatched.append(rating)
            continue
        found = _by_suffix(path, by_name.get(os.path.basename(path), []), by_path)
        if found:
            matched.append(Matched(by_path[found], found, rating, "suffix"))
        else:
            unmatched.append(rating)
    return MatchResult(matched, unmatched)


def _by_suffix(path: str, candidates: list[str], by_path: dict[str, str]) -> str | None:
    """The scanned photo sharing the longest tail of folders with ``path``, when that is one photo (one
    content hash); None when nothing shares the name or the best tail is ambiguous."""
    if not candidates:
        return None
    parts = Path(path).parts[::-1]

    def shared(other: str) -> int:
        n = 0
        for a, b in zip(parts, Path(other).parts[::-1]):
            if a != b:
                break
            n += 1
        return n

    scored = sorted(((shared(c), c) for c in candidates), reverse=True)
    best = scored[0][0]
    top = [c for n, c in scored if n == best]
    return top[0] if len({by_path[c] for c in top}) == 1 else None


# --------------------------------------------------------------------- aesthete's own ratings (feedback)

USER_CHANGED_WEIGHT = 2.0
"""Weight of a rating the photographer changed after aesthete wrote one: a correction of the model is
the most informative judgement there is (issue 15, "the most valuable kind")."""


@dataclass(frozen=True)
class Written:
    path: str  # the photo whose sidecar got the rating
    content_hash: str
    rating: int
    label: str | None = None
    # What each sidecar held before aesthete first rated the photo (sidecar path -> :data:`Marks`), which
    # ``cull --clear-previous`` puts back; None for a rating recorded before aesthete kept this.
    previous: dict[str, Marks] | None = None


def record_written(store: Store, written: Sequence[Written]) -> None:
    """Remember ratings aesthete just wrote (``cull --xmp``, after the sidecars are in place)."""
    if not written:
        return
    stamp = now_iso()
    with store.transaction():
        store.conn.executemany(
            "INSERT INTO written_ratings (path, content_hash, rating, label, previous, written_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET content_hash = excluded.content_hash, "
            "rating = excluded.rating, label = excluded.label, previous = excluded.previous, "
            "written_at = excluded.written_at",
            [
                (path_key(os.path.abspath(w.path))[0], w.content_hash, w.rating, w.label,
                 None if w.previous is None else json.dumps(w.previous), stamp)
                for w in written
            ],
        )  # fmt: skip


def written_by_path(store: Store) -> dict[str, Written]:
    """photo path (as :func:`aesthete.store.path_key` stores it) -> the rating aesthete last wrote there."""
    rows = store.conn.execute("SELECT path, content_hash, rating, label, previous FROM written_ratings").fetchall()
    return {p: Written(p, h, r, label, None if before is None else _marks(before)) for p, h, r, label, before in rows}


def _marks(recorded: str) -> dict[str, Marks]:
    """A record's ``previous`` (JSON): sidecar path -> :data:`aesthete.xmp.Marks`. A record older than the
    colour labels holds (rating, label) alone: its colour labels are not known (None), so left as they are."""
    return {path: (*marks, None, None, None, None)[: len(MARKED)] for path, marks in json.loads(recorded).items()}


def forget_written(store: Store, paths: Sequence[str]) -> None:
    """Drop the records of ``paths`` (stored keys): their ratings were cleared, aesthete's no longer."""
    with store.transaction():
        store.conn.executemany("DELETE FROM written_ratings WHERE path = ?", [(p,) for p in paths])


def written_ratings(store: Store) -> dict[str, Written]:
    """content hash -> the last rating aesthete wrote for it (empty before the table exists)."""
    try:
        rows = store.conn.execute(
            "SELECT path, content_hash, rating, label FROM written_ratings ORDER BY written_at, rowid"
        ).fetchall()
    except sqlite3.OperationalError:  # no such table: nothing was ever recorded
        return {}
    return {h: Written(p, h, r, label) for p, h, r, label in rows}


@dataclass
class Judgement:
    content_hash: str
    path: str
    rating: Rating
    weight: float  # 1 for a rating aesthete never wrote; USER_CHANGED_WEIGHT for one the user corrected
    changed: bool


def photographers_own(matched: Sequence[Matched], written: dict[str, Written]) -> tuple[list[Judgement], int]:
    """The photographer's judgements among ``matched``, and how many were aesthete's own and left out.

    A rating still equal to what aesthete wrote for that photo is aesthete's opinion, not the
    photographer's: left out. One that differs was changed by the photographer: kept, weighted up."""
    out, own = [], 0
    for m in matched:
        mine = written.get(m.content_hash)
        if mine is not None and m.rating.rating == mine.rating:
            own += 1
            continue
        changed = mine is not None
        out.append(Judgement(m.content_hash, m.path, m.rating, USER_CHANGED_WEIGHT if changed else 1.0, changed))
    return out, own
