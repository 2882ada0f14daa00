"""Camera formats: RAW through its embedded preview, HEIC/HEIF through its thumbnail, a JPEG's MPF large
preview, and a RAW beside its JPEG as one photo (scored once, grouped, exported, rated and moved together).

Every file is generated here (tests/formatgen.py): a DNG that LibRaw reads stands in for every RAW
format, since LibRaw recognises a file by its content, not its name; the extensions route it."""

from __future__ import annotations

import io
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import formatgen as fg
import imagegen as g
import numpy as np
import pytest
from photoset import add_scores
from PIL import Image, UnidentifiedImageError
from typer.testing import CliRunner

from aesthete import decode as decode_module
from aesthete.cli import app
from aesthete.decode import NO_DECODER, NOT_AN_IMAGE, DecodeError, decode
from aesthete.discover import FoundFile, discover, pair_raws
from aesthete.export import export_album, move_rejects
from aesthete.formats import RAW_EXTENSIONS
from aesthete.scoring import plan, score
from aesthete.select import cull
from aesthete.store import Store
from aesthete.xmp import write_sidecars

runner = CliRunner()
REQUIRED_RAWS = {".cr2", ".cr3", ".nef", ".arw", ".dng", ".orf", ".raf", ".rw2"}


def colour_at(image: Image.Image, xy: tuple[int, int]) -> str:
    """Which marker colour a pixel is: red, blue or grey (JPEG-tolerant)."""
    r, gr, b = image.getpixel(xy)
    return "red" if r > 200 and b < 60 else "blue" if b > 200 and r < 60 else "grey" if abs(r - b) < 40 else "?"


def other_orientation(orientation: int) -> int:
    return 3 if orientation != 3 else 6


# ---------------------------------------------------------------------------------------------- RAW


@pytest.mark.parametrize("orientation", range(1, 9))
def test_raw_preview_is_turned_upright_by_the_raws_orientation_not_the_previews(orientation: int) -> None:
    upright = g.marker_image((300, 200))
    stored = g.stored_for_orientation(upright, orientation)
    # The preview's own EXIF claims another orientation: only the RAW's tag may count.
    preview = g.encode(stored, "JPEG", quality=95, exif=g.make_exif(orientation=other_orientation(orientation)))
    raw_size = (96, 64) if orientation < 5 else (64, 96)  # the sensor as stored
    decoded = decode(fg.dng(preview, orientation=orientation, raw_size=raw_size), raw="DNG")
    assert decoded.format == "DNG" and decoded.notes == []
    assert (decoded.width, decoded.height) == (96, 64)  # the RAW's size, upright
    assert decoded.image.size == (300, 200)  # the preview, never a demosaic of the 96x64 sensor
    assert colour_at(decoded.image, (5, 5)) == "red"
    assert colour_at(decoded.image, (294, 194)) == "blue"
    assert colour_at(decoded.image, (294, 5)) == "grey"


def test_large_raw_preview_is_decoded_at_reduced_size() -> None:
    preview = g.encode(g.scene(1, (1620, 1080)), "JPEG", quality=90)
    data = fg.dng(preview, raw_size=(1620, 1080))
    decoded = decode(data, raw="CR2", target=lambda w, h: (w // 5, h // 5))
    assert decoded.format == "CR2" and (decoded.width, decoded.height) == (1620, 1080)
    assert 324 <= decoded.image.width < 1620 // 2 and decoded.image.height >= 216  # a DCT-scaled decode
    assert decoded.notes == []


def test_raw_with_a_small_or_no_preview_is_decoded_from_raw_data_at_half_size() -> None:
    small = g.encode(g.scene(2, (160, 120)), "JPEG")
    decoded = decode(fg.dng(small, raw_size=(640, 480)), raw="NEF", target=lambda w, h: (300, 225))
    assert decoded.image.size == (320, 240)  # half of the sensor: each 2x2 Bayer block one pixel
    assert decoded.notes == ["embedded preview 160x120 is too small: raw data decoded at half size"]
    bare = decode(fg.dng(None, raw_size=(640, 480), orientation=6), raw="ARW", target=lambda w, h: (200, 300))
    assert (bare.width, bare.height) == (480, 640) and bare.image.size == (240, 320)  # upright
    assert bare.notes == ["no usable embedded preview: raw data decoded at half size"]


def test_bad_raw_files_are_decode_errors_with_a_reason() -> None:
    good = fg.dng(g.encode(g.scene(3, (120, 80)), "JPEG"))
    for data in (g.random_bytes(5000), good[:200], g.encode(g.scene(3, (120, 80)), "JPEG")):
        with pytest.raises(DecodeError) as caught:
            decode(data, raw="CR3")
        assert caught.value.kind == NOT_AN_IMAGE and "\n" not in str(caught.value)


def test_worker_routes_every_raw_extension_through_libraw(tmp_path: Path) -> None:
    """Pillow would read a TIFF-based RAW as its first IFD (here the 64x48 sensor data): the name routes
    it to LibRaw, which finds the preview."""
    preview = g.encode(g.scene(4, (600, 400)), "JPEG")
    for seed, ext in enumerate(sorted(REQUIRED_RAWS)):
        (tmp_path / f"shot{ext.upper()}").write_bytes(fg.dng(preview, seed=seed))
    summary = score([str(tmp_path)], store=Store(tmp_path / "a.db"), model="nima", workers=1)
    assert (summary.found, summary.analysed, summary.failed) == (8, 8, [])
    rows = Store(tmp_path / "a.db").photos(None)
    assert {row["format"] for row in rows} == {ext[1:].upper() for ext in REQUIRED_RAWS}
    assert all(row["capture_time"] == "2024-05-01T12:00:03" and row["camera"] == "EOS Test" for row in rows)


def test_discovery_accepts_raw_and_heif_names_in_any_case(tmp_path: Path) -> None:
    assert REQUIRED_RAWS <= RAW_EXTENSIONS
    names = [f"a{ext.upper()}" for ext in REQUIRED_RAWS] + [f"b{ext}" for ext in REQUIRED_RAWS]
    names += ["c.HEIC", "d.heif", "e.HIF", "f.Dng"]
    for name in [*names, "a.CR2.xmp", "a.xmp", "thumbs.db"]:
        (tmp_path / name).write_bytes(b"x")
    assert sorted(Path(f.path).name for f in discover([tmp_path])) == sorted(names)


# --------------------------------------------------------------------------------------------- HEIF


def test_heic_is_decoded_upright_from_its_thumbnail_when_large_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    from pillow_heif import as_plugin

    chosen: list[object] = []
    pick = as_plugin._thumbnail_for_size
    monkeypatch.setattr(as_plugin, "_thumbnail_for_size", lambda *a: chosen.append(pick(*a)) or chosen[-1])
    upright = g.marker_image((480, 640))
    data = fg.heic(g.stored_for_orientation(upright, 6), thumbnails=(320,), orientation=6)
    small = decode(data, target=lambda w, h: (120, 160))
    assert small.format == "HEIF" and (small.width, small.height) == (480, 640)
    assert chosen[-1] is not None and chosen[-1].size == (240, 320)  # the thumbnail, not the HEVC image
    assert small.image.size == (120, 160) and colour_at(small.image, (3, 3)) == "red"
    assert colour_at(small.image, (116, 156)) == "blue"
    full = decode(data, target=lambda w, h: (400, 500))  # more than the thumbnail holds: the full image
    assert chosen[-1] is None and full.image.size == (480, 640) and colour_at(full.image, (5, 5)) == "red"


def test_heic_without_pillow_heif_is_a_no_decoder_failure_retried_later(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = fg.heic(g.scene(5, (64, 48)))
    monkeypatch.setattr(decode_module, "HEIF_AVAILABLE", False)
    error = decode_module._unidentified(UnidentifiedImageError("x"), data)
    assert error.kind == NO_DECODER and "aesthete-photo[heic]" in str(error)
    # Such a failure is not cached for good: the next scan tries again (the extra may be installed by then).
    store = Store(tmp_path / "a.db")
    path = str(tmp_path / "a.heic")
    row = {"path": path, "size": 10, "mtime_ns": 1, "status": "failed", "error_kind": NO_DECODER, "error": "x"}
    store.write(files=[row, {**row, "path": str(tmp_path / "b.jpg"), "error_kind": "corrupt"}])
    found = [FoundFile(path, 10, 1), FoundFile(str(tmp_path / "b.jpg"), 10, 1)]
    jobs, cached, failed_before = plan(found, store, None, rescore=False)
    assert [job.path for job in jobs] == [path] and failed_before == [str(tmp_path / "b.jpg")]
    # ... but not while a decoder is still missing: that would read every such file on every rescan.
    monkeypatch.setattr(decode_module, "ALL_DECODERS", False)
    jobs, cached, failed_before = plan(found, store, None, rescore=False)
    assert jobs == [] and len(failed_before) == 2


# ---------------------------------------------------------------------------------------------- MPF


def mpf_jpeg(preview_size: tuple[int, int] = (1200, 800), **kwargs: object) -> bytes:
    """A 2400x1600 marker primary (grey, red top-left corner) tagged orientation 6, with a blue preview whose
    top-left corner is green: the colours say which frame was decoded and how it was turned."""
    primary = g.marker_image((2400, 1600))  # its corners show how it was turned
    preview = Image.new("RGB", preview_size, (0, 0, 255))
    preview.paste((0, 255, 0), (0, 0, preview_size[0] // 4, preview_size[1] // 4))  # green: the preview's corner
    return fg.mpo(primary, [preview], exif=g.make_exif(orientation=6), **kwargs)


def test_mpf_large_preview_is_decoded_instead_of_the_primary() -> None:
    data = mpf_jpeg()
    assert Image.open(io.BytesIO(data)).mpinfo[0xB002][1]["Attribute"]["MPType"].startswith("Large Thumbnail")
    decoded = decode(data, target=lambda w, h: (300, 450))
    assert (decoded.width, decoded.height) == (1600, 2400)  # the primary's size, upright
    assert decoded.image.width >= 300 and decoded.image.height >= 450 and decoded.image.width < decoded.image.height
    # The preview, turned by the primary's orientation 6: its top-left (green) corner is now top-right.
    assert np.allclose(decoded.image.getpixel((decoded.image.width - 3, 3)), (0, 255, 0), atol=40)
    assert colour_at(decoded.image, (3, decoded.image.height - 3)) == "blue"


def test_mpf_preview_is_skipped_when_too_small_misshapen_or_not_a_thumbnail() -> None:
    too_small = decode(mpf_jpeg(), target=lambda w, h: (1000, 1500))
    wrong_aspect = decode(mpf_jpeg((1280, 720)), target=lambda w, h: (300, 450))
    stereo = decode(mpf_jpeg(mp_type=0x020002), target=lambda w, h: (300, 450))  # a disparity frame
    full = decode(mpf_jpeg())
    for decoded in (too_small, wrong_aspect, stereo, full):
        assert decoded.format == "MPO" and (decoded.width, decoded.height) == (1600, 2400)
        # The primary's red top-left corner, after orientation 6, sits top-right.
        assert colour_at(decoded.image, (decoded.image.width - 3, 3)) == "red"
    assert full.image.size == (1600, 2400)


def test_cut_off_mpf_preview_falls_back_to_the_primary() -> None:
    """A copy cut short loses the preview (written after the primary) first: the intact primary is used."""
    data = mpf_jpeg()
    decoded = decode(data[: len(data) - 2000], target=lambda w, h: (300, 450))
    assert colour_at(decoded.image, (decoded.image.width - 3, 3)) == "red"
    assert decoded.notes and decoded.notes[0].startswith("MPF preview unreadable")


# ------------------------------------------------------------------------------------ RAW+JPEG pairs


def test_pairing_by_folder_and_stem() -> None:
    def found(*paths: str) -> list[FoundFile]:
        return [FoundFile(p, 1, 1) for p in paths]

    photos, companions = pair_raws(
        found(
            "/s/IMG_1.JPG", "/s/IMG_1.CR2", "/s/img_1.dng", "/s/IMG_2.NEF", "/s/IMG_3.heic", "/s/IMG_3.ARW",
            "/s/IMG_4.tif", "/s/IMG_4.CR2", "/s/IMG_5.jpg", "/s/IMG_5.JPG", "/s/IMG_5.RAF", "/t/IMG_1.CR2",
        )
    )  # fmt: skip
    assert {raw.path: partner for raw, partner in companions} == {
        "/s/IMG_1.CR2": "/s/IMG_1.JPG",
        "/s/img_1.dng": "/s/IMG_1.JPG",
        "/s/IMG_3.ARW": "/s/IMG_3.heic",
        "/s/IMG_5.RAF": "/s/IMG_5.JPG",
    }
    assert [f.path for f in photos] == [
        "/s/IMG_1.JPG", "/s/IMG_2.NEF", "/s/IMG_3.heic", "/s/IMG_4.tif", "/s/IMG_4.CR2", "/s/IMG_5.jpg", "/s/IMG_5.JPG",
        "/t/IMG_1.CR2",
    ]  # fmt: skip


def write_pair_shoot(folder: Path) -> Path:
    """IMG_1: JPEG + CR2 (one photo); IMG_2: a NEF alone; IMG_3: a JPEG alone."""
    folder.mkdir(parents=True, exist_ok=True)
    exif = {"exif": g.make_exif(datetime_original="2024:05:01 12:00:03", model="EOS Test")}
    (folder / "IMG_1.JPG").write_bytes(g.encode(g.scene(11, (600, 400)), "JPEG", **exif))
    (folder / "IMG_1.CR2").write_bytes(fg.dng(g.encode(g.scene(11, (600, 400)), "JPEG"), seed=1))
    (folder / "IMG_2.NEF").write_bytes(fg.dng(g.encode(g.scene(12, (600, 400)), "JPEG"), seed=2))
    (folder / "IMG_3.JPG").write_bytes(g.encode(g.scene(13, (600, 400)), "JPEG", **exif))
    return folder


def test_raw_and_jpeg_of_one_frame_are_one_photo_scored_once(tmp_path: Path, tiny_checkpoints) -> None:
    folder = write_pair_shoot(tmp_path / "shoot")
    store = Store(tmp_path / "a.db")
    weights = str(tiny_checkpoints["nima"])
    first = score([str(folder)], store=store, weights=weights, device="cpu", workers=1)
    assert (first.found, first.paired, first.scored, first.failed) == (4, 1, 3, [])
    rows = {Path(row["path"]).name: row for row in store.photos(store.latest_model_key())}
    assert sorted(rows) == ["IMG_1.JPG", "IMG_2.NEF", "IMG_3.JPG"]
    assert rows["IMG_1.JPG"]["companions"] == [str(folder / "IMG_1.CR2")]
    assert rows["IMG_1.JPG"]["format"] == "JPEG" and rows["IMG_2.NEF"]["format"] == "NEF"
    assert store.conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 3  # the RAW was never decoded
    raw_row = store.conn.execute("SELECT status, content_hash, pair_of FROM files WHERE path LIKE '%CR2'").fetchone()
    assert raw_row == ("paired", None, str(folder / "IMG_1.JPG"))
    shown = store.photo_by_path(str(folder / "IMG_1.CR2"))
    assert shown["pair_of"] == str(folder / "IMG_1.JPG") and shown["content_hash"] == rows["IMG_1.JPG"]["content_hash"]
    result = runner.invoke(app, ["show", str(folder / "IMG_1.CR2"), "--db", str(store.path)])
    assert result.exit_code == 0 and "RAW companion of" in result.stdout and "mean" in result.stdout
    # A partner without camera details (a HEIC often has none): said of the partner, whose image is shown,
    # not "could not be read" of the RAW, which reads fine.
    with store.transaction():
        store.conn.execute("UPDATE images SET make = NULL, camera = NULL, lens = NULL, focal_length = NULL, "
                           "f_number = NULL, exposure_time = NULL, iso = NULL, capture_time = NULL")  # fmt: skip
    result = runner.invoke(app, ["show", str(folder / "IMG_1.CR2"), "--db", str(store.path)])
    assert result.exit_code == 0 and "could not be read" not in result.stdout
    assert "no camera details" in result.stdout or "no EXIF" in result.stdout
    listed = runner.invoke(app, ["rank", str(folder), "--db", str(store.path), "--json"])
    assert {Path(p["path"]).name: p["companions"] for p in json.loads(listed.stdout)["photos"]}["IMG_1.JPG"] == [
        str(folder / "IMG_1.CR2")
    ]
    # A rescan reads nothing and writes no file rows.
    before = store.conn.execute("SELECT * FROM files ORDER BY path").fetchall()
    again = score([str(folder)], store=store, weights=weights, device="cpu", workers=1)
    assert (again.scored, again.cached, again.paired, again.device) == (0, 3, 1, None)
    assert store.conn.execute("SELECT * FROM files ORDER BY path").fetchall() == before
    # Without its JPEG, the RAW is a photo of its own, read through its preview.
    (folder / "IMG_1.JPG").unlink()
    alone = score([str(folder)], store=store, weights=weights, device="cpu", workers=1)
    assert (alone.paired, alone.scored, alone.cached) == (0, 1, 2)
    assert store.photo_by_path(str(folder / "IMG_1.CR2"))["image"]["format"] == "CR2"


def test_a_raw_whose_jpeg_cannot_be_read_is_scored_on_its_own(tmp_path: Path) -> None:
    folder = write_pair_shoot(tmp_path / "shoot")
    (folder / "IMG_1.JPG").write_bytes((folder / "IMG_1.JPG").read_bytes()[:300])  # cut short
    store = Store(tmp_path / "a.db")
    first = score([str(folder)], store=store, model="nima", workers=1)
    assert first.paired == 1 and [Path(f.path).name for f in first.failed] == ["IMG_1.JPG"]
    second = score([str(folder)], store=store, model="nima", workers=1)  # the failure is known now
    assert (second.paired, second.analysed) == (0, 1)
    rows = {Path(row["path"]).name: row for row in store.photos(None)}
    assert sorted(rows) == ["IMG_1.CR2", "IMG_2.NEF", "IMG_3.JPG"] and rows["IMG_1.CR2"]["companions"] == []
    # Export and sidecars leave out a companion deleted since the scan.
    (folder / "IMG_1.CR2").rename(folder / "elsewhere.CR2")
    (folder / "IMG_1.JPG").write_bytes(g.encode(g.scene(11, (600, 400)), "JPEG"))
    (folder / "IMG_1.CR2").write_bytes((folder / "elsewhere.CR2").read_bytes())
    third = score([str(folder)], store=store, model="nima", workers=1)
    assert (third.paired, third.analysed, third.failed) == (1, 1, [])  # paired again (elsewhere.CR2: known content)
    (folder / "IMG_1.CR2").unlink()
    ranking = cull(store, [str(folder)], top=5, group=False)
    outcome = export_album(ranking, str(tmp_path / "album"), mode="copy")
    assert not outcome.failed and "IMG_1.CR2" not in os.listdir(tmp_path / "album")


def test_a_raw_deleted_beside_its_jpeg_is_no_longer_its_companion(tmp_path: Path) -> None:
    folder = write_pair_shoot(tmp_path / "shoot")
    store = Store(tmp_path / "a.db")
    assert score([str(folder)], store=store, model="nima", workers=1).paired == 1
    (folder / "IMG_1.CR2").unlink()
    again = score([str(folder)], store=store, model="nima", workers=1)
    assert (again.paired, again.cached) == (0, 3)
    rows = {Path(row["path"]).name: row for row in store.photos(None)}
    assert rows["IMG_1.JPG"]["companions"] == []  # before: still the deleted IMG_1.CR2, in rank and its --json
    assert store.conn.execute("SELECT count(*) FROM files WHERE status = 'paired'").fetchone() == (0,)
    listed = runner.invoke(app, ["rank", str(folder), "--db", str(store.path), "--json"])
    assert all(p["companions"] == [] for p in json.loads(listed.stdout)["photos"])


@pytest.fixture
def pair_shoot(tmp_path: Path) -> tuple[Path, Store]:
    folder = write_pair_shoot(tmp_path / "shoot")
    store = Store(tmp_path / "a.db")
    score([str(folder)], store=store, model="nima", workers=1)
    add_scores(store, {"IMG_1.JPG": 7.5, "IMG_2.NEF": 6.0, "IMG_3.JPG": 4.0})
    return folder, store


def test_export_carries_the_raw_under_the_same_stem(pair_shoot: tuple[Path, Store], tmp_path: Path) -> None:
    folder, store = pair_shoot
    album = tmp_path / "album"
    album.mkdir()
    (album / "IMG_1.CR2").write_bytes(b"another photo's RAW")  # a clash: the pair moves to a new stem together
    ranking = cull(store, top=2)
    assert [Path(row["path"]).name for row in ranking.rows] == ["IMG_1.JPG", "IMG_2.NEF"]
    outcome = export_album(ranking, str(album), mode="copy")
    assert sorted(Path(p.target).name for p in outcome.placed) == ["IMG_1 (2).CR2", "IMG_1 (2).JPG", "IMG_2.NEF"]
    assert (album / "IMG_1 (2).CR2").read_bytes() == (folder / "IMG_1.CR2").read_bytes()
    manifest = json.loads(Path(outcome.manifest).read_text())
    assert manifest["picks"][0]["companion_files"] == ["IMG_1 (2).CR2"]
    again = export_album(ranking, str(album), mode="copy")  # a re-run recognises the pair already there
    assert {p.how for p in again.placed} == {"present"}


def test_a_re_export_removes_a_raw_with_its_jpeg(pair_shoot: tuple[Path, Store], tmp_path: Path) -> None:
    """A pick no longer picked leaves the album with its RAW companion (one photo), whatever the mode; a RAW
    the photographer edited since (a copy changed) stays."""
    folder, store = pair_shoot
    for mode in ("copy", "symlink", "link"):
        album = tmp_path / mode
        export_album(cull(store, top=2), str(album), mode=mode)
        assert sorted(os.listdir(album)) == ["IMG_1.CR2", "IMG_1.JPG", "IMG_2.NEF", "manifest.json"]
        add_scores(store, {"IMG_1.JPG": 1.0})  # no longer among the top 2
        outcome = export_album(cull(store, top=2), str(album), mode=mode)
        assert sorted(os.listdir(album)) == ["IMG_2.NEF", "IMG_3.JPG", "manifest.json"]
        assert sorted(Path(r.target).name for r in outcome.removed) == ["IMG_1.CR2", "IMG_1.JPG"]
        assert {r.source for r in outcome.removed} == {str(folder / "IMG_1.JPG")} and not outcome.left_alone
        add_scores(store, {"IMG_1.JPG": 7.5})
    album = tmp_path / "edited"
    export_album(cull(store, top=2), str(album))  # copies
    with open(album / "IMG_1.CR2", "ab") as raw:
        raw.write(b"edited")
    add_scores(store, {"IMG_1.JPG": 1.0})
    outcome = export_album(cull(store, top=2), str(album))
    assert [Path(r.target).name for r in outcome.removed] == ["IMG_1.JPG"]
    assert outcome.left_alone == [str(album / "IMG_1.CR2")]
    assert all(os.path.exists(folder / name) for name in ("IMG_1.JPG", "IMG_1.CR2", "IMG_2.NEF", "IMG_3.JPG"))


def test_xmp_rates_the_raw_for_darktable_and_lightroom(pair_shoot: tuple[Path, Store], tmp_path: Path) -> None:
    folder, store = pair_shoot
    (folder / "IMG_1.xmp").write_text(  # Lightroom's develop settings must survive the merge
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" crs:Exposure2012="+0.50"/>'
        "</rdf:RDF></x:xmpmeta>"
    )
    result = runner.invoke(app, ["cull", str(folder), "--db", str(store.path), "--top", "2", "--xmp"])
    assert result.exit_code == 0, result.output
    xmp = "{http://ns.adobe.com/xap/1.0/}Rating"
    for name in ("IMG_1.JPG.xmp", "IMG_1.CR2.xmp", "IMG_1.xmp", "IMG_2.NEF.xmp", "IMG_2.xmp"):
        description = (
            ET.parse(folder / name).getroot().find(".//{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
        )
        assert description.get(xmp) == "1", name
    assert "Exposure2012" in (folder / "IMG_1.xmp").read_text()
    assert not (folder / "IMG_3.JPG.xmp").exists() and not (folder / "IMG_3.xmp").exists()


def test_move_rejects_moves_the_pair_and_its_sidecars(pair_shoot: tuple[Path, Store], tmp_path: Path) -> None:
    folder, store = pair_shoot
    add_scores(store, {"IMG_1.JPG": 3.0, "IMG_2.NEF": 6.0, "IMG_3.JPG": 7.0})
    (folder / "IMG_1.CR2.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    rejects = tmp_path / "rejects"
    ranking = cull(store, top=2)
    outcome = move_rejects(ranking.others, str(rejects), on_moved=store.move_file)
    assert not outcome.failed
    assert sorted(os.listdir(rejects)) == ["IMG_1.CR2", "IMG_1.CR2.xmp", "IMG_1.JPG"]
    assert sorted(os.listdir(folder)) == ["IMG_2.NEF", "IMG_3.JPG"]
    moved = {Path(row["path"]).name: row for row in store.photos(None)}["IMG_1.JPG"]
    assert moved["real_path"] == str(rejects / "IMG_1.JPG") and moved["companions"] == [str(rejects / "IMG_1.CR2")]


def test_no_sidecar_for_a_companion_deleted_since_the_scan(tmp_path: Path) -> None:
    photo = tmp_path / "IMG_9.JPG"
    photo.write_bytes(b"x")
    results = write_sidecars(str(photo), [str(tmp_path / "IMG_9.CR2")], rating=2)
    assert [Path(r.sidecar).name for r in results] == ["IMG_9.JPG.xmp"]
    (tmp_path / "IMG_9.CR2").write_bytes(b"raw")
    results = write_sidecars(str(photo), [str(tmp_path / "IMG_9.CR2")], rating=2)
    assert [Path(r.sidecar).name for r in results] == ["IMG_9.JPG.xmp", "IMG_9.CR2.xmp", "IMG_9.xmp"]
