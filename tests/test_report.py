"""The HTML contact sheet: self-contained, escaped, and rendered for real by headless Chromium."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from imagegen import jpeg_with_orientation
from photoset import SHOOT, add_scores, frame, snapshot, write_photo, write_shoot
from PIL import Image
from typer.testing import CliRunner

from aesthete import weights
from aesthete.cli import app
from aesthete.report import build_report, is_our_report, thumbnail
from aesthete.scoring import score
from aesthete.store import Store

HOSTILE_NAME = "<img src=x onerror=\"document.title='PWNED'\">.jpg"
HOSTILE_CAMERA = "</script><script>document.title='PWNED2'</script>"
HOSTILE_LENS = '"><img src=x onerror="document.title=\'PWNED3\'">'
PHOTOS = len(SHOOT) + 2
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Run after load: make every lazy image load now, wait until each is decoded, and write what rendered
# into the page, where --dump-dom shows it.
PROBE = """<script>
window.addEventListener("load", async () => {
  const images = [...document.images];
  images.forEach((image) => { image.loading = "eager"; });
  await Promise.all(images.map((image) => image.decode().catch(() => null)));
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    title: document.title,
    images: images.length,
    decoded: images.filter((image) => image.naturalWidth > 0 && image.complete).length,
    charts: document.querySelectorAll("svg.dist").length,
    bars: document.querySelectorAll("svg.dist rect").length,
    groups: [...document.querySelectorAll("section.group")].map((g) => g.querySelectorAll("figure").length),
    names: [...document.querySelectorAll(".name")].map((n) => n.textContent),
    exif: [...document.querySelectorAll(".exif")].map((n) => n.textContent),
  });
  document.body.appendChild(probe);
});
</script>"""


@pytest.fixture
def sheet(tmp_path: Path) -> tuple[Path, Store]:
    folder = write_shoot(tmp_path / "shoot")
    write_photo(folder / HOSTILE_NAME, frame(6), "2024:05:01 15:00:00", "Canon EOS R5")
    write_photo(folder / "hostile_exif.jpg", frame(7), "2024:05:01 15:00:30", HOSTILE_CAMERA, lens=HOSTILE_LENS)
    store = Store(tmp_path / "a.db")
    assert score([str(folder)], store=store, model="nima", workers=1).analysed == PHOTOS
    add_scores(store, {Path(row["path"]).name: 2.0 + i * 0.4 for i, row in enumerate(store.photos(None))})
    return folder, store


def chromium(*args: str, profile: Path) -> str:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout


def test_report_is_self_contained_escaped_and_grouped(sheet: tuple[Path, Store]) -> None:
    folder, store = sheet
    before = snapshot(folder)
    page, ranking = build_report(store, [str(folder)])
    assert len(ranking.rows) == PHOTOS
    assert page.count("<img ") == page.count('loading="lazy"') == PHOTOS
    assert page.count('src="data:image/jpeg;base64,') == PHOTOS
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing to fetch: one file is the whole report
    assert page.count('<svg class="dist"') == PHOTOS and page.count('<section class="group"') == 3
    assert "<script" not in page and "script-src" not in page and "default-src 'none'" in page
    assert html.escape(HOSTILE_NAME) in page and HOSTILE_NAME not in page
    assert html.escape(HOSTILE_CAMERA) in page and html.escape(HOSTILE_LENS) in page
    # Score order, groups placed where their best frame ranks.
    places = [int(n) for n in re.findall(r'<span class="rank">#(\d+)</span>', page)]
    assert sorted(places) == list(range(1, PHOTOS + 1))
    assert snapshot(folder) == before


def group_boxes(page: str) -> dict[str, str]:
    """Each group's box in the sheet: its label -> its markup."""
    return dict(re.findall(r'<section class="group" aria-label="([^"]*)">(.*?)</section>', page, re.S))


def test_a_group_cull_keeps_no_frame_of_says_so_and_each_frame_says_why(sheet: tuple[Path, Store]) -> None:
    """Field test: a box of two blurry frames was labelled "outlined: the one cull keeps" with nothing
    outlined in it, and no card said why (`groups` says "blurry" beside each)."""
    folder, store = sheet
    store.conn.execute("UPDATE images SET flags = '[]'")
    for name, flag in (("b1.jpg", "blurry"), ("b2.jpg", "blurry"), ("a3.jpg", "overexposed")):
        store.conn.execute(
            "UPDATE images SET flags = ? WHERE content_hash = (SELECT content_hash FROM files WHERE path = ?)",
            (json.dumps([flag]), str(folder / name)),
        )
    page, _ = build_report(store, [str(folder)])
    boxes = group_boxes(page)
    (blurry,) = [box for box in boxes.values() if "b1.jpg" in box]
    (label,) = [label for label, box in boxes.items() if box is blurry]
    assert label.endswith("· 2 similar frames · cull keeps none of them") and "outlined" not in label
    assert 'class="photo best"' not in blurry and blurry.count('<div class="why">cull: blurry</div>') == 2
    (kept,) = [box for box in boxes.values() if "a1.jpg" in box]  # a group with a keeper: outlined, as before
    assert kept.count('class="photo best"') == 1
    assert re.findall(r'<div class="why">([^<]*)</div>', kept) == ["cull: overexposed"]


def card_of(page: str, name: str) -> str:
    """The card of the photo called ``name`` in the sheet."""
    (card,) = [card for card in page.split("</figure>") if '<div class="name" ' in card and f">{name}</div>" in card]
    return card


def test_a_photo_deleted_or_edited_since_score_says_so_on_its_card_and_in_the_header(sheet: tuple[Path, Store]) -> None:
    """Field test: a photo deleted after `score` showed "no preview: No such file or directory" and the
    header counted it with the rest; one edited since showed its new picture beside the old numbers."""
    folder, store = sheet
    (folder / "d.jpg").unlink()
    write_photo(folder / "e.jpg", frame(1).transpose(Image.Transpose.FLIP_LEFT_RIGHT), None, None)  # re-edited
    page, ranking = build_report(store, [str(folder)])
    assert len(ranking.rows) == PHOTOS  # still listed: it may be on a drive that is not mounted
    gone = card_of(page, "d.jpg")
    assert "<img" not in gone and "not on disk now (deleted, or on a drive that is not mounted)" in gone
    assert "No such file" not in page
    edited = card_of(page, "e.jpg")
    assert "<img" in edited
    assert "changed on disk since `score` read it: the numbers are of the earlier version" in edited
    header = page.split("<main>")[0]
    assert "1 photo not on disk now (deleted, or on a drive that is not mounted): no preview" in header
    assert "1 photo changed on disk since `score` read it" in header
    assert "not on disk" not in card_of(page, "a1.jpg") and "changed on disk" not in card_of(page, "a1.jpg")


def test_files_that_could_not_be_read_are_counted_in_the_sheet_and_on_the_terminal(
    sheet: tuple[Path, Store], tmp_path: Path
) -> None:
    """Field test: a corrupt file of the shoot was simply not in the sheet, and nothing said one was left out."""
    folder, store = sheet
    (folder / "card error.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    assert len(score([str(folder)], store=store, model="nima", workers=1).failed) == 1
    page, _ = build_report(store, [str(folder)])
    left_out = f"1 file could not be read and is not in this sheet (`aesthete failures {folder}` says why)"
    assert html.escape(left_out) in page.split("<main>")[0] and page.count("<figure") == PHOTOS
    out = tmp_path / "sheet.html"
    result = CliRunner().invoke(app, ["report", str(folder), "--html", str(out), "--db", str(store.path)])
    assert result.exit_code == 0 and left_out in result.stderr, result.output
    # Another folder's failure is not this sheet's business.
    (tmp_path / "other").mkdir()
    write_photo(tmp_path / "other" / "fine.jpg", frame(8), None, None)
    score([str(tmp_path / "other")], store=store, model="nima", workers=1)
    assert "could not be read" not in build_report(store, [str(tmp_path / "other")])[0]


def test_a_folder_whose_name_is_not_utf8_gets_a_sheet_not_a_traceback(tmp_path: Path) -> None:
    """Field test: `report` of a folder named in Latin-1 built every thumbnail, then died writing the page
    (UnicodeEncodeError: surrogates not allowed; the folder's name in the header), and wrote nothing."""
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9 shoot"))
    write_photo(folder / "a.jpg", frame(1), "2024:05:01 12:00:00", "Canon EOS R5")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    store = Store(tmp_path / "a.db")
    score([str(folder)], store=store, model="nima", workers=1)
    page, _ = build_report(store, [str(folder)])
    page.encode("utf-8")  # what writing it does
    header = html.unescape(page.split("<main>")[0])
    assert "caf\\xe9 shoot, ranked by" in header and "caf\\xe9 shoot'` says why" in header
    out = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.html"))
    result = CliRunner().invoke(app, ["report", str(folder), "--html", str(out), "--db", str(store.path)])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "wrote " + str(tmp_path / "caf\\xe9.html") + " (1 photo, " in result.output  # not \udce9
    assert out.read_text("utf-8").count("<figure") == 1


def test_a_sheet_of_photos_with_no_aesthetic_score_says_so_once(tmp_path: Path) -> None:
    """Field test: the header said "ranked by technical quality (no aesthetic scores)." and, two lines
    below, "no aesthetic scores yet: ranked by technical quality (...)"."""
    folder = write_shoot(tmp_path / "shoot")
    store = Store(tmp_path / "a.db")
    score([str(folder)], store=store, model="nima", workers=1)  # no weights: technical signals only
    header = html.unescape(build_report(store, [str(folder)])[0].split("<main>")[0])
    expected = f"in {folder}, ranked by technical quality (sharpness, exposure, noise, size): no aesthetic scores yet."
    assert expected in header and header.count("no aesthetic score") == 1 and header.count("technical quality") == 1


def test_the_sheet_names_its_folders_in_full_when_they_were_given_relative(
    sheet: tuple[Path, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field test: `report . --html ../sheet.html` wrote a sheet saying "49 photos in ., ranked by ..." and
    "`aesthete failures .` says why": meaningless once the page is mailed or opened from elsewhere."""
    folder, store = sheet
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    score([str(folder)], store=store, model="nima", workers=1)
    monkeypatch.chdir(folder)
    header = html.unescape(build_report(store, ["."])[0].split("<main>")[0])
    assert f"{PHOTOS} photos in {folder}, ranked by" in header and f"`aesthete failures {folder}` says why" in header
    monkeypatch.chdir(folder.parent)
    assert f"{PHOTOS} photos in {folder}, ranked by" in html.unescape(build_report(store, [folder.name])[0])


def test_each_card_gives_the_photos_pixel_size_so_a_smaller_copy_of_a_frame_can_be_told(
    sheet: tuple[Path, Store],
) -> None:
    """Field test: a burst frame and its half-size export sat side by side in one box with the same
    thumbnail; only "technical 0.69" against "0.31" hinted at why cull kept the one."""
    folder, store = sheet
    write_photo(folder / "a1 small.jpg", frame(1).resize((160, 120)), "2024:05:01 12:00:00", "Canon EOS R5")
    score([str(folder)], store=store, model="nima", workers=1)
    add_scores(store, {"a1 small.jpg": 3.0})
    page, _ = build_report(store, [str(folder)])
    (burst,) = [box for box in group_boxes(page).values() if "a1.jpg" in box]
    assert ">160×120 · Canon EOS R5 · " in card_of(burst, "a1 small.jpg")
    assert ">320×240 · Canon EOS R5 · " in card_of(burst, "a1.jpg")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_chromium_renders_every_thumbnail_and_chart_and_runs_nothing_hostile(
    sheet: tuple[Path, Store], tmp_path: Path
) -> None:
    folder, store = sheet
    page, _ = build_report(store, [str(folder)])
    # The probe needs scripts, so this copy drops the page's script-forbidding policy: what is checked
    # here is that escaping alone keeps the hostile names and EXIF inert.
    probed = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page).replace("</body>", PROBE + "</body>")
    (tmp_path / "probed.html").write_text(probed, "utf-8")
    probe = None
    # Virtual time runs out early on a starved machine (other jobs on both cores): one retry, a longer budget.
    for budget in (15_000, 60_000):
        dom = chromium(f"--virtual-time-budget={budget}", "--dump-dom", (tmp_path / "probed.html").as_uri(),
                       profile=tmp_path / "profile")  # fmt: skip
        if probe := re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S):
            break
    assert probe, "the probe script did not finish: the page's markup is broken"
    result = json.loads(html.unescape(probe.group(1)))
    assert result["title"] == "aesthete contact sheet"  # no onerror ran
    assert result["images"] == result["decoded"] == PHOTOS
    assert result["charts"] == PHOTOS and result["bars"] == PHOTOS * 10
    assert sorted(result["groups"]) == [2, 2, 5]
    assert HOSTILE_NAME in result["names"] and any(HOSTILE_CAMERA in line for line in result["exif"])
    # The report as written renders too, policy and all: a real screenshot, not a blank page.
    shot, report = tmp_path / "shot.png", tmp_path / "report.html"
    report.write_text(page, "utf-8")
    chromium("--window-size=1200,900", "--virtual-time-budget=5000", f"--screenshot={shot}", report.as_uri(),
             profile=tmp_path / "profile")  # fmt: skip
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 900) and np.asarray(image).std() > 10


def test_thumbnails_are_upright_small_jpegs(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    path.write_bytes(jpeg_with_orientation(6, size=(120, 80)))
    thumb = thumbnail(str(path))
    image = Image.open(io.BytesIO(base64.b64decode(thumb.uri.split(",", 1)[1])))
    assert image.format == "JPEG" and image.size == (thumb.width, thumb.height) == (120, 80)
    red, green, blue = image.convert("RGB").getpixel((5, 5))
    assert red > 200 and green < 80 and blue < 80  # the red marker is top-left once upright
    big = write_photo(tmp_path / "big.jpg", frame(1).resize((1600, 1200)), None, None)
    assert max(thumbnail(str(big)).width, thumbnail(str(big)).height) == 256
    (tmp_path / "gone.jpg").write_bytes(b"")
    missing = thumbnail(str(tmp_path / "gone.jpg"))
    assert missing.uri is None and missing.problem


def test_cli_report_writes_one_file_and_refuses_to_overwrite_a_photo(sheet: tuple[Path, Store], tmp_path: Path) -> None:
    folder, store = sheet
    before = snapshot(folder)
    runner = CliRunner()
    out = tmp_path / "sheet.html"
    result = runner.invoke(app, ["report", str(folder), "--html", str(out), "--db", str(store.path)])
    assert result.exit_code == 0, result.output
    assert out.read_text("utf-8").count("<figure") == PHOTOS and f"{PHOTOS} photos" in result.stderr
    victim = folder / "a1.jpg"
    refused = runner.invoke(app, ["report", str(folder), "--html", str(victim), "--db", str(store.path)])
    assert refused.exit_code == 2 and "refusing to overwrite" in refused.output
    assert snapshot(folder) == before
    # An earlier sheet is replaced; a page someone wrote by hand is not (the field test lost one).
    again = runner.invoke(app, ["report", str(folder), "--html", str(out), "--db", str(store.path)])
    assert again.exit_code == 0, again.output
    page = tmp_path / "index.html"
    page.write_text("<!doctype html><title>My portfolio</title><p>years of work</p>", "utf-8")
    kept = runner.invoke(app, ["report", str(folder), "--html", str(page), "--db", str(store.path)])
    assert kept.exit_code == 2 and "not a contact sheet aesthete wrote; refusing to overwrite it" in kept.output
    assert page.read_text("utf-8").endswith("years of work</p>")


def test_cli_report_refuses_a_folder_or_a_missing_folder_before_building_the_sheet(
    sheet: tuple[Path, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It built every thumbnail first and only then failed to write ("No such file or directory"), and a
    # folder given as --html was "not an .html file" / "not a contact sheet aesthete wrote".
    import aesthete.report

    folder, store = sheet
    monkeypatch.setattr(aesthete.report, "build_report", lambda *a, **k: pytest.fail("the sheet was built"))
    runner = CliRunner()
    (tmp_path / "sheets.html").mkdir()
    for target, says in (
        (tmp_path / "no such folder" / "sheet.html", f"there is no folder {tmp_path / 'no such folder'}"),
        (folder, f"{folder} is a folder: --html takes the file to write"),
        (tmp_path / "sheets.html", "is a folder"),
    ):
        result = runner.invoke(app, ["report", str(folder), "--html", str(target), "--db", str(store.path)])
        assert result.exit_code == 2 and says in result.stderr, result.output


def test_cli_report_refuses_an_empty_name_and_an_unwritable_folder_before_building_the_sheet(
    sheet: tuple[Path, Store], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Field test: `--html ""` said ". is a folder"; a folder the sheet cannot be written to (a read-only
    # mount, /sys) failed only after every thumbnail was built (4.7 s for 500 photos, minutes for a library).
    import aesthete.fileops
    import aesthete.report

    folder, store = sheet
    monkeypatch.setattr(aesthete.report, "build_report", lambda *a, **k: pytest.fail("the sheet was built"))
    locked = tmp_path / "read-only mount"
    locked.mkdir()
    real_open = os.open

    def refuse_in_locked(path: str, *args: object, **kwargs: object) -> int:
        if os.path.dirname(os.path.abspath(path)) == str(locked):
            raise PermissionError(13, "Read-only file system", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(aesthete.fileops.os, "open", refuse_in_locked)
    runner = CliRunner()
    for target, says in (("", "--html needs a file name"), (str(locked / "sheet.html"), "Read-only file system")):
        result = runner.invoke(app, ["report", str(folder), "--html", target, "--db", str(store.path)])
        assert result.exit_code == 2 and says in result.stderr, result.output
        assert len(result.stderr.strip().splitlines()) == 1
    assert list(locked.iterdir()) == []


def test_cli_report_replaces_its_own_sheet_of_any_name_and_the_sheet_a_link_points_at(
    sheet: tuple[Path, Store], tmp_path: Path
) -> None:
    # Field test: a sheet written as `--html sheet` (no .html) was then "not an .html file" to the next run, and
    # a link to a sheet in a shared folder was replaced by a file, leaving the shared sheet stale.
    folder, store = sheet
    runner = CliRunner()
    bare = tmp_path / "sheet"
    shared = tmp_path / "shared"
    shared.mkdir()
    linked, link = shared / "shoot.html", tmp_path / "shoot.html"
    link.symlink_to(linked)
    for _ in range(2):
        for target in (bare, link):
            result = runner.invoke(app, ["report", str(folder), "--html", str(target), "--db", str(store.path)])
            assert result.exit_code == 0, result.output
            # The size is the file's, in the units `weights` uses: bytes, not characters, never "0.0 MB".
            size = weights.human_size(os.path.getsize(target))
            assert f"wrote {target} ({PHOTOS} photos, {size})" in result.stderr
    assert link.is_symlink() and os.readlink(link) == str(linked) and is_our_report(linked)
    assert is_our_report(bare)
