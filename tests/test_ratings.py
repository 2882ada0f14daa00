"""Reading ratings from XMP and from Lightroom, darktable and digiKam catalogs, never writing to them."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

import pytest
from PIL import Image

from aesthete.ratings import (
    USER_CHANGED_WEIGHT,
    Rating,
    RatingsError,
    Written,
    match_ratings,
    photographers_own,
    read_darktable,
    read_digikam,
    read_lightroom,
    read_source,
    read_xmp,
    record_written,
    written_ratings,
)
from aesthete.store import Store
from tests import ratinglib
from tests.imagegen import encode, scene


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> list[ratinglib.Photo]:
    return ratinglib.make_library(tmp_path_factory.mktemp("lib") / "Photos", 18, size=(96, 72))


def _expected(photos: list[ratinglib.Photo]) -> dict[str, int]:
    return {str(p.path): p.rating for p in photos}


def _untouched(path: Path):
    """A context check: bytes and mtime of ``path`` the same afterwards, and no file appears beside it."""
    before = (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent)))

    def check() -> None:
        assert (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(path.parent))) == before

    return check


@pytest.mark.parametrize("adobe", [False, True], ids=["photo.jpg.xmp", "photo.xmp"])
def test_sidecars(tmp_path: Path, adobe: bool) -> None:
    photos = ratinglib.make_library(tmp_path / "P", 6, size=(64, 48))
    ratinglib.write_sidecars(photos, adobe=adobe)
    got = {r.path: r for r in read_xmp([str(p.path) for p in photos])}
    assert {k: r.rating for k, r in got.items()} == _expected(photos)
    assert all(r.pick == (-1 if r.rating < 0 else 0) and r.source == "xmp" for r in got.values())


def test_embedded_xmp_jpeg_tiff_dng(tmp_path: Path) -> None:
    jpeg = tmp_path / "a.jpg"
    jpeg.write_bytes(ratinglib.jpeg_with_xmp(encode(scene(1, (64, 48))), ratinglib.xmp_packet(4, "Green")))
    paths = [jpeg]
    for name in ("b.tif", "c.dng"):
        path = tmp_path / name
        scene(2, (64, 48)).save(path, format="TIFF", tiffinfo={700: ratinglib.xmp_packet(2)})
        paths.append(path)
    plain = tmp_path / "d.jpg"
    plain.write_bytes(encode(scene(3, (64, 48))))
    got = {Path(r.path).name: (r.rating, r.label, r.source) for r in read_xmp([str(p) for p in [*paths, plain]])}
    assert got == {"a.jpg": (4, "Green", "xmp-embedded"), "b.tif": (2, None, "xmp-embedded"),
                   "c.dng": (2, None, "xmp-embedded")}  # fmt: skip
    # a sidecar is what the editor wrote last: it wins over the packet inside the file
    Path(str(jpeg) + ".xmp").write_bytes(ratinglib.xmp_packet(1))
    assert [(r.rating, r.source) for r in read_xmp([str(jpeg)])] == [(1, "xmp")]


def test_xmp_that_is_not_a_rating(tmp_path: Path) -> None:
    photo = tmp_path / "a.jpg"
    photo.write_bytes(encode(scene(1, (32, 24))))
    for text in (b"not xml <", ratinglib.xmp_packet(9), b'<!DOCTYPE x [<!ENTITY a "b">]><x/>'):
        Path(str(photo) + ".xmp").write_bytes(text)
        assert read_xmp([str(photo)]) == []


def test_lightroom(tmp_path: Path, library: list[ratinglib.Photo]) -> None:
    catalog = tmp_path / "Lightroom Catalog.lrcat"
    ratinglib.lightroom_catalog(catalog, library)
    check = _untouched(catalog)
    got = {r.path: r for r in read_lightroom(catalog)}
    check()
    assert {k: r.rating if r.pick >= 0 else -1 for k, r in got.items()} == _expected(library)
    assert all(r.rejected == (r.rating == 0 and r.pick == -1) for r in got.values() if r.rejected)
    fives = [r for r in got.values() if r.rating == 5]
    assert fives and all(r.pick == 1 and r.label == "Red" and r.source == "lightroom" for r in fives)


def test_lightroom_virtual_copies_do_not_speak_for_their_master(tmp_path: Path, library: list[ratinglib.Photo]) -> None:
    """A virtual copy (an Adobe_images row on its master's file, masterImage set) rates an edit, not the
    photo: its stars used to come out as a second rating of the same file, and the copy's won."""
    catalog = tmp_path / "Lightroom Catalog.lrcat"
    ratinglib.lightroom_catalog(catalog, library)
    conn = sqlite3.connect(catalog)
    conn.executescript("ALTER TABLE Adobe_images ADD COLUMN masterImage INTEGER; ALTER TABLE Adobe_images ADD copyName")
    rows = conn.execute("SELECT id_local, rootFile FROM Adobe_images").fetchall()
    conn.executemany(
        "INSERT INTO Adobe_images (id_local, id_global, rating, pick, rootFile, masterImage, copyName) "
        "VALUES (?, ?, 1, -1, ?, ?, 'Black and white')",
        [(1000 + image, f"V{image}", file, image) for image, file in rows],
    )
    conn.commit()
    conn.close()
    got = read_lightroom(catalog)
    assert len(got) == len(library)
    assert {r.path: r.rating if r.pick >= 0 else -1 for r in got} == _expected(library)


def test_darktable_duplicates_do_not_speak_for_their_original(tmp_path: Path, library: list[ratinglib.Photo]) -> None:
    """A darktable duplicate (an images row on the same file, version 1) rates its edit, as a virtual copy."""
    db = tmp_path / "library.db"
    ratinglib.darktable_library(db, library)
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE images ADD COLUMN version INTEGER")
    conn.execute("UPDATE images SET version = 0")
    conn.execute(
        "INSERT INTO images (group_id, film_id, width, height, filename, maker, model, flags, version) "
        "SELECT id, film_id, width, height, filename, maker, model, 8 | 32, 1 FROM images"
    )  # every duplicate rejected
    conn.commit()
    conn.close()
    got = read_darktable(db)
    assert len(got) == len(library)
    assert {r.path: r.rating for r in got} == _expected(library)


@pytest.mark.parametrize("old_reject", [False, True], ids=["reject-bit-8", "reject-stars-6"])
def test_darktable(tmp_path: Path, library: list[ratinglib.Photo], old_reject: bool) -> None:
    db = tmp_path / "library.db"
    ratinglib.darktable_library(db, library, old_reject=old_reject)
    check = _untouched(db)
    got = read_darktable(db)
    check()
    assert {r.path: r.rating for r in got} == _expected(library)
    assert {r.label for r in got if r.rating == 5} == {"Green"}
    assert all(r.pick == -1 for r in got if r.rating == -1)


def test_digikam(tmp_path: Path, library: list[ratinglib.Photo]) -> None:
    db = tmp_path / "digikam4.db"
    ratinglib.digikam_database(db, library)
    check = _untouched(db)
    got = read_digikam(db)
    check()
    assert {r.path: r.rating for r in got} == {k: max(v, 0) for k, v in _expected(library).items()}


def test_a_catalog_in_wal_mode_is_read_without_a_file_appearing(tmp_path: Path, library: list[ratinglib.Photo]) -> None:
    """darktable and digiKam may keep their catalogs in WAL mode; a plain read-only open then made
    ``-wal`` and ``-shm`` files beside a closed catalog (field test). While the program has it open (its
    ``-wal`` exists) the latest committed change, still in the ``-wal``, is read."""
    db = tmp_path / "library.db"
    ratinglib.darktable_library(db, library)
    sqlite3.connect(db).execute("PRAGMA journal_mode = WAL").connection.close()
    check = _untouched(db)
    assert {r.path: r.rating for r in read_darktable(db)} == _expected(library)
    check()

    program = sqlite3.connect(db)  # darktable running: every photo re-rated 2 stars, still in the -wal
    program.execute("PRAGMA wal_autocheckpoint = 0")
    with program:
        program.execute("UPDATE images SET flags = (flags & ~15) | 2")  # stars 2, reject bit cleared
    assert (tmp_path / "library.db-wal").stat().st_size > 0
    ratings = read_darktable(db)
    program.close()
    assert len(ratings) == len(library) and {r.rating for r in ratings} == {2}


def test_catalog_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(RatingsError, match="no such catalog"):
        read_lightroom(tmp_path / "missing.lrcat")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is no database" * 100)
    with pytest.raises(RatingsError, match="cannot read it as SQLite"):
        read_darktable(junk)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE images (id INTEGER)").connection.commit()
    with pytest.raises(RatingsError, match=r"not a darktable library \(no images.film_id\)") as info:
        read_source("darktable", other)
    assert "\n" not in str(info.value)
    with pytest.raises(RatingsError, match="unknown ratings source"):
        read_source("picasa", other)


def test_read_only_connection_refuses_writes(tmp_path: Path, library: list[ratinglib.Photo]) -> None:
    from aesthete.ratings import open_catalog

    db = tmp_path / "library.db"
    ratinglib.darktable_library(db, library)
    check = _untouched(db)
    conn = open_catalog(db)
    with pytest.raises(sqlite3.OperationalError):
        conn.execute("UPDATE images SET flags = 0")
    conn.close()
    check()


def _store(tmp_path: Path, photos: list[ratinglib.Photo]) -> Store:
    store = Store(tmp_path / "aesthete.db")
    ratinglib.fill_store(store, photos)
    return store


def test_match_by_path_moved_root_and_copy(tmp_path: Path, library: list[ratinglib.Photo]) -> None:
    store = _store(tmp_path, library)
    by_path = match_ratings([Rating(str(p.path), p.rating) for p in library], store)
    assert not by_path.unmatched and {m.how for m in by_path.matched} == {"path"}
    # the catalog still names the library's old place: matched by the folders and name they share
    catalog = tmp_path / "moved.lrcat"
    ratinglib.lightroom_catalog(catalog, library, root="/Volumes/OldDisk/Photos")
    moved = match_ratings(read_lightroom(catalog), store)
    assert not moved.unmatched and {m.how for m in moved.matched} == {"suffix"}
    assert {m.content_hash: m.rating.rating if m.rating.pick >= 0 else -1 for m in moved.matched} == {
        p.content_hash: p.rating for p in library
    }
    # a copy elsewhere (the catalog's files still exist, aesthete scanned another copy): by content hash
    copy = tmp_path / "copy" / "x.jpg"
    copy.parent.mkdir()
    copy.write_bytes(library[0].path.read_bytes())
    hashed = match_ratings([Rating(str(copy), 3)], store)
    assert [(m.how, m.content_hash) for m in hashed.matched] == [("hash", library[0].content_hash)]
    # an unknown photo; a name only one scanned photo has; then a second, different photo of that name
    assert match_ratings([Rating("/nowhere/else.jpg", 3)], store).unmatched
    lone = match_ratings([Rating("/old/" + library[0].path.name, 2)], store)
    assert [(m.how, m.content_hash) for m in lone.matched] == [("suffix", library[0].content_hash)]
    twin = tmp_path / "other" / library[0].path.name
    twin.parent.mkdir()
    twin.write_bytes(library[1].path.read_bytes())
    ratinglib.fill_store(store, [ratinglib.Photo(twin, 0, 0.0, 0, library[1].content_hash, library[1].signals)])
    assert match_ratings([Rating("/old/" + library[0].path.name, 2)], store).unmatched


def test_a_rated_photo_never_scanned_is_not_matched_to_a_scanned_namesake(
    tmp_path: Path, library: list[ratinglib.Photo]
) -> None:
    store = _store(tmp_path, library)
    namesake = tmp_path / "not scored" / library[0].path.parent.name / library[0].path.name
    namesake.parent.mkdir(parents=True)
    namesake.write_bytes(encode(scene(99, (48, 36)), "JPEG"))  # another photo, under the same folder and name
    result = match_ratings([Rating(str(namesake), 5)], store)
    assert not result.matched and len(result.unmatched) == 1
    store.close()


def test_windows_and_network_share_catalogs_match_photos_of_one_name_in_two_folders(tmp_path: Path) -> None:
    """Cameras number their files again every card: 2023/day1/IMG_0000.jpg and 2024/day1/IMG_0000.jpg are
    different photos. A catalog's folders must be compared one by one to tell them apart."""
    years = {y: ratinglib.make_library(tmp_path / y, 4, size=(48, 36), seed=i) for i, y in enumerate(("2023", "2024"))}
    photos = years["2023"] + years["2024"]
    assert len({p.path.name for p in photos}) == len(photos) // 2  # every name twice
    store = _store(tmp_path, photos)
    # darktable on Windows keeps its film rolls as D:\Pictures\2023\day1
    library = tmp_path / "library.db"
    ratinglib.darktable_library(library, photos)
    conn = sqlite3.connect(library)
    for roll, folder in conn.execute("SELECT id, folder FROM film_rolls").fetchall():
        year, day = Path(folder).parts[-2:]
        conn.execute("UPDATE film_rolls SET folder = ? WHERE id = ?", (f"D:\\Pictures\\{year}\\{day}", roll))
    conn.commit()
    conn.close()
    windows = match_ratings(read_darktable(library), store)
    assert not windows.unmatched and {m.how for m in windows.matched} == {"suffix"}
    assert {m.content_hash: m.rating.rating for m in windows.matched} == {p.content_hash: p.rating for p in photos}
    # digiKam: an album root on a network share names its mount point as mountpath=, not path=
    database = tmp_path / "digikam4.db"
    ratinglib.digikam_database(database, years["2023"])
    conn = sqlite3.connect(database)
    conn.execute("UPDATE AlbumRoots SET identifier = ?, specificPath = '/'",
                 ("networkshareid:?mountpath=" + quote(str(tmp_path / "2023"), safe=""),))  # fmt: skip
    conn.commit()
    conn.close()
    share = match_ratings(read_digikam(database), store)
    assert not share.unmatched and {m.how for m in share.matched} == {"path"}
    store.close()


def test_own_ratings_are_not_the_photographers(tmp_path: Path, library: list[ratinglib.Photo]) -> None:

    store = _store(tmp_path, library)
    wrote = {p.content_hash: 3 for p in library[:6]}  # cull --xmp --stars gave these three stars
    record_written(store, [Written(str(p.path), p.content_hash, 3) for p in library[:6]])
    assert {h: w.rating for h, w in written_ratings(store).items()} == wrote
    # the photographer left photos 0-2 at aesthete's three stars and re-rated 3-5
    ratings = [Rating(str(p.path), 3 if i < 3 else (1 if p.rating == 3 else p.rating)) for i, p in enumerate(library)]
    own, left_out = photographers_own(match_ratings(ratings, store).matched, written_ratings(store))
    assert left_out == 3
    kept = {j.content_hash: j for j in own}
    assert not {p.content_hash for p in library[:3]} & set(kept)
    assert all(
        kept[p.content_hash].changed and kept[p.content_hash].weight == USER_CHANGED_WEIGHT for p in library[3:6]
    )
    assert all(not kept[p.content_hash].changed and kept[p.content_hash].weight == 1.0 for p in library[6:])


def test_no_written_table_means_nothing_written(tmp_path: Path) -> None:
    assert written_ratings(Store(tmp_path / "a.db")) == {}


def test_tiff_fixture_really_carries_tag_700(tmp_path: Path) -> None:
    path = tmp_path / "b.tif"
    scene(2, (32, 24)).save(path, format="TIFF", tiffinfo={700: ratinglib.xmp_packet(2)})
    with Image.open(path) as im:
        assert 700 in im.tag_v2
