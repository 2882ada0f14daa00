"""Generated photo libraries whose ratings follow a known visual rule, written in every ratings format.

The rule (:func:`rule`): blur costs two stars per level, a bad exposure (1.5 EV either way) one star;
the sharpest, well-exposed frames get 5 stars and the blurriest badly exposed ones are rejected. Every
catalog is built with the real table and column names of its program (see aesthete/ratings.py for the
sources), with only the columns the readers need plus a few real neighbours.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from aesthete.fingerprint import hash_file
from aesthete.signals import technical_quality, technical_signals
from aesthete.store import Store, now_iso
from tests.imagegen import blurred, encode, exposed, scene

BLUR = (0.0, 1.5, 4.0)  # Gaussian radius per blur level
EXPOSURE = (-1.5, 0.0, 1.5)  # EV per exposure level


def rule(blur_level: int, ev: float) -> int:
    """Stars the imaginary photographer gives: -1 is a reject."""
    stars = 5 - 2 * blur_level - (1 if ev else 0)
    return stars if stars >= 1 else -1


@dataclass
class Photo:
    path: Path
    blur: int
    ev: float
    rating: int
    content_hash: str
    signals: dict


def make_library(folder: Path, count: int, size: tuple[int, int] = (160, 120), seed: int = 0) -> list[Photo]:
    """``count`` JPEGs of different scenes, blur and exposure levels cycling, in two sub-folders."""
    photos = []
    for i in range(count):
        level, ev = i % len(BLUR), EXPOSURE[(i // len(BLUR)) % len(EXPOSURE)]
        image = (
            blurred(exposed(scene(seed * 1000 + i, size), ev), BLUR[level])
            if BLUR[level]
            else exposed(scene(seed * 1000 + i, size), ev)
        )
        path = folder / ("day1" if i % 2 else "day2") / f"IMG_{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(image, "JPEG", quality=92))
        signals = technical_signals(image)
        signals["technical"] = technical_quality(signals)
        photos.append(Photo(path, level, ev, rule(level, ev), hash_file(path), signals))
    return photos


def fill_store(store: Store, photos: list[Photo]) -> None:
    """What ``aesthete score`` leaves for these photos: file rows and image rows with the signals."""
    stamp = now_iso()
    files, images = [], []
    for p in photos:
        stat = p.path.stat()
        files.append({"path": str(p.path), "raw_path": None, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                      "content_hash": p.content_hash, "status": "ok",
                      "first_seen": stamp, "last_seen": stamp})  # fmt: skip
        images.append({"content_hash": p.content_hash, "width": 160, "height": 120, "format": "JPEG", **p.signals})
    store.write(files=files, images=images)


def xmp_packet(rating: int, label: str | None = None, element: bool = False) -> bytes:
    """An XMP packet as Lightroom / darktable write it (attribute form) or in element form."""
    props = f"<xmp:Rating>{rating}</xmp:Rating>" if element else ""
    attrs = "" if element else f' xmp:Rating="{rating}"'
    if label:
        attrs += f' xmp:Label="{label}"'
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:darktable="http://darktable.sf.net/"{attrs}>{props}'
        '</rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>'
    ).encode()


def jpeg_with_xmp(jpeg: bytes, packet: bytes) -> bytes:
    """``jpeg`` with an XMP APP1 segment right after SOI, as cameras and Lightroom exports carry it."""
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + packet
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def write_sidecars(photos: list[Photo], adobe: bool = False) -> None:
    """``photo.jpg.xmp`` (darktable / digiKam) or Adobe's ``photo.xmp`` for every photo."""
    for i, p in enumerate(photos):
        sidecar = os.path.splitext(p.path)[0] + ".xmp" if adobe else str(p.path) + ".xmp"
        Path(sidecar).write_bytes(xmp_packet(p.rating, element=bool(i % 2)))


def lightroom_catalog(path: Path, photos: list[Photo], root: str | None = None) -> None:
    """A Lightroom Classic catalog: ratings in ``Adobe_images``, rejects as ``pick = -1``."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE AgLibraryRootFolder (id_local INTEGER PRIMARY KEY, id_global UNIQUE NOT NULL,
            absolutePath UNIQUE NOT NULL DEFAULT '', name NOT NULL DEFAULT '', relativePathFromCatalog);
        CREATE TABLE AgLibraryFolder (id_local INTEGER PRIMARY KEY, id_global UNIQUE NOT NULL,
            parentId INTEGER, pathFromRoot NOT NULL DEFAULT '', rootFolder INTEGER NOT NULL DEFAULT 0,
            visibility INTEGER);
        CREATE TABLE AgLibraryFile (id_local INTEGER PRIMARY KEY, id_global UNIQUE NOT NULL,
            baseName NOT NULL DEFAULT '', errorMessage, extension NOT NULL DEFAULT '',
            folder INTEGER NOT NULL DEFAULT 0, idx_filename NOT NULL DEFAULT '', originalFilename NOT NULL DEFAULT '');
        CREATE TABLE Adobe_images (id_local INTEGER PRIMARY KEY, id_global UNIQUE NOT NULL, captureTime,
            colorLabels NOT NULL DEFAULT '', fileFormat NOT NULL DEFAULT 'unset', pick NOT NULL DEFAULT 0,
            rating, rootFile INTEGER NOT NULL DEFAULT 0);
        """
    )
    base = (root or str(photos[0].path.parent.parent)).rstrip("/") + "/"
    conn.execute("INSERT INTO AgLibraryRootFolder VALUES (1, 'R1', ?, 'lib', NULL)", (base,))
    folders: dict[str, int] = {}
    for i, p in enumerate(photos, start=1):
        sub = p.path.parent.name + "/"
        if sub not in folders:
            folders[sub] = len(folders) + 1
            conn.execute("INSERT INTO AgLibraryFolder VALUES (?, ?, NULL, ?, 1, NULL)", (folders[sub], f"F{sub}", sub))
        stem, ext = p.path.stem, p.path.suffix.lstrip(".")
        conn.execute("INSERT INTO AgLibraryFile VALUES (?, ?, ?, NULL, ?, ?, ?, ?)",
                     (i, f"G{i}", stem, ext, folders[sub], p.path.name, p.path.name))  # fmt: skip
        rating, pick = (None, -1) if p.rating < 0 else (p.rating, 1 if p.rating == 5 else 0)
        label = "Red" if p.rating == 5 else ""
        conn.execute("INSERT INTO Adobe_images VALUES (?, ?, NULL, ?, 'JPG', ?, ?, ?)",
                     (i, f"I{i}", label, pick, rating, i))  # fmt: skip
    conn.commit()
    conn.close()


def darktable_library(path: Path, photos: list[Photo], old_reject: bool = False) -> None:
    """A darktable library.db: stars in ``images.flags & 7``, the reject as bit 8 (schema >= 29) or, with
    ``old_reject``, as the star value 6 (before)."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE main.film_rolls (id INTEGER PRIMARY KEY, access_timestamp INTEGER, folder VARCHAR(1024) NOT NULL);
        CREATE TABLE main.images (id INTEGER PRIMARY KEY AUTOINCREMENT, group_id INTEGER, film_id INTEGER,
            width INTEGER, height INTEGER, filename VARCHAR, maker VARCHAR, model VARCHAR, flags INTEGER);
        CREATE TABLE main.color_labels (imgid INTEGER, color INTEGER);
        CREATE TABLE main.db_info (key VARCHAR PRIMARY KEY, value VARCHAR);
        """
    )
    conn.execute("INSERT INTO db_info VALUES ('version', ?)", ("28" if old_reject else "55",))
    rolls: dict[str, int] = {}
    for i, p in enumerate(photos, start=1):
        folder = str(p.path.parent)
        if folder not in rolls:
            rolls[folder] = len(rolls) + 1
            conn.execute("INSERT INTO film_rolls VALUES (?, 0, ?)", (rolls[folder], folder))
        ldr = 32  # DT_IMAGE_LDR, set on import of a JPEG: a neighbouring bit the reader must ignore
        stars = (6 if old_reject else 8) if p.rating < 0 else p.rating
        conn.execute("INSERT INTO images VALUES (?, ?, ?, 160, 120, ?, 'Canon', 'R5', ?)",
                     (i, i, rolls[folder], p.path.name, stars | ldr))  # fmt: skip
        if p.rating == 5:
            conn.execute("INSERT INTO color_labels VALUES (?, 2)", (i,))
    conn.commit()
    conn.close()


def digikam_database(path: Path, photos: list[Photo], root: str | None = None) -> None:
    """A digiKam digikam4.db: ``ImageInformation.rating`` (a reject has no digiKam star: rating 0)."""
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE AlbumRoots (id INTEGER PRIMARY KEY, label TEXT, status INTEGER NOT NULL, type INTEGER NOT NULL,
            identifier TEXT, specificPath TEXT, UNIQUE(identifier, specificPath));
        CREATE TABLE Albums (id INTEGER PRIMARY KEY, albumRoot INTEGER NOT NULL, relativePath TEXT NOT NULL,
            date DATE, caption TEXT, collection TEXT, icon INTEGER, UNIQUE(albumRoot, relativePath));
        CREATE TABLE Images (id INTEGER PRIMARY KEY, album INTEGER, name TEXT NOT NULL, status INTEGER NOT NULL,
            category INTEGER NOT NULL, modificationDate DATETIME, fileSize INTEGER, uniqueHash TEXT,
            UNIQUE (album, name));
        CREATE TABLE ImageInformation (imageid INTEGER PRIMARY KEY, rating INTEGER, creationDate DATETIME,
            digitizationDate DATETIME, orientation INTEGER, width INTEGER, height INTEGER, format TEXT);
        """
    )
    base = root or str(photos[0].path.parent.parent)
    conn.execute("INSERT INTO AlbumRoots VALUES (1, 'lib', 0, 1, 'volumeid:?uuid=0b21c2da', ?)", (base,))
    albums: dict[str, int] = {}
    for i, p in enumerate(photos, start=1):
        rel = "/" + p.path.parent.name
        if rel not in albums:
            albums[rel] = len(albums) + 1
            conn.execute("INSERT INTO Albums VALUES (?, 1, ?, NULL, NULL, NULL, NULL)", (albums[rel], rel))
        conn.execute("INSERT INTO Images VALUES (?, ?, ?, 1, 1, NULL, ?, NULL)",
                     (i, albums[rel], p.path.name, p.path.stat().st_size))  # fmt: skip
        conn.execute("INSERT INTO ImageInformation VALUES (?, ?, NULL, NULL, 1, 160, 120, 'JPG')",
                     (i, max(p.rating, 0)))  # fmt: skip
    conn.commit()
    conn.close()
