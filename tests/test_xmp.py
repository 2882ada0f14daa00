"""XMP sidecars: created, merged without losing anything, refused when unusable, read back by exiftool."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from pathlib import Path

import pytest
import tools

from aesthete.errors import OptionError
from aesthete.xmp import (
    PICK_RATING,
    XMP,
    held_rating,
    quantile_stars,
    rated_by_hand,
    restore_sidecars,
    sidecar_path,
    still_as_written,
    write_sidecar,
)

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DARKTABLE_SIDECAR = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
   xmp:Rating="2"
   xmpMM:DerivedFrom="photo.jpg"
   darktable:xmp_version="5">
   <!-- written by hand -->
   <dc:subject><rdf:Bag><rdf:li>wedding</rdf:li><rdf:li>café &amp; cake</rdf:li></rdf:Bag></dc:subject>
   <darktable:history><rdf:Seq>
    <rdf:li darktable:operation="exposure" darktable:enabled="1"/>
   </rdf:Seq></darktable:history>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8 not really a jpeg, and never read")
    return path


def properties(sidecar: Path) -> dict[str, str]:
    """Every attribute and leaf text in the sidecar, keyed by its element path and expanded name."""
    found = {}

    def walk(element: ET.Element, where: str) -> None:
        for name, value in element.attrib.items():
            found[f"{where}@{name}"] = value
        if len(element) == 0 and (element.text or "").strip():
            found[where] = element.text.strip()
        for index, child in enumerate(element):
            if isinstance(child.tag, str):
                walk(child, f"{where}/{child.tag}[{index}]")

    walk(ET.parse(sidecar).getroot(), "")
    return found


EXIFTOOL_INSTALL = "apt install libimage-exiftool-perl, or https://exiftool.org; .ci/run installs it"


def exiftool(path: Path) -> dict[str, object]:
    """exiftool's reading of ``path``'s XMP: skipped with the reason when exiftool is missing, failed under CI."""
    program = tools.require_tool("exiftool", EXIFTOOL_INSTALL)
    out = subprocess.run([program, "-j", "-XMP:all", str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)[0]


def test_a_new_sidecar_is_named_after_the_whole_file_name(photo: Path) -> None:
    before = photo.read_bytes(), photo.stat().st_mtime_ns
    result = write_sidecar(str(photo), rating=PICK_RATING, label="aesthete pick")
    sidecar = Path(sidecar_path(str(photo)))
    assert sidecar.name == "photo.jpg.xmp" and result.status == "created"
    props = properties(sidecar)
    description = next(k for k in props if k.endswith(f"@{{{XMP}}}Rating"))
    assert props[description] == "1" and props[description.replace("Rating", "Label")] == "aesthete pick"
    text = sidecar.read_text("utf-8")
    assert text.startswith("<?xpacket begin=") and "xmp:Rating" in text and "ns0" not in text
    assert (photo.read_bytes(), photo.stat().st_mtime_ns) == before
    assert sorted(p.name for p in photo.parent.iterdir()) == ["photo.jpg", "photo.jpg.xmp"]  # no temp left


def test_exiftool_reads_a_new_sidecar(photo: Path) -> None:
    write_sidecar(str(photo), rating=PICK_RATING, label="aesthete pick")
    tags = exiftool(Path(sidecar_path(str(photo))))
    assert tags["Rating"] == 1 and tags["Label"] == "aesthete pick"


def test_merging_keeps_every_other_field_and_prefix(photo: Path) -> None:
    sidecar = Path(sidecar_path(str(photo)))
    sidecar.write_text(DARKTABLE_SIDECAR, "utf-8")
    before = properties(sidecar)
    result = write_sidecar(str(photo), rating=4, label="Green")
    assert result.status == "updated"
    after = properties(sidecar)
    rating_key = next(k for k in before if k.endswith(f"@{{{XMP}}}Rating"))
    label_key = rating_key.replace("Rating", "Label")
    assert after.pop(rating_key) == "4" and after.pop(label_key) == "Green"
    before.pop(rating_key)
    assert after == before  # history, keywords, DerivedFrom, toolkit: all as they were
    text = sidecar.read_text("utf-8")
    for prefix in ("darktable:history", "dc:subject", "xmpMM:DerivedFrom", "<!-- written by hand -->"):
        assert prefix in text
    assert text.count("xmp:Rating") == 1


def test_exiftool_reads_a_merged_sidecar_with_every_other_field(photo: Path) -> None:
    sidecar = Path(sidecar_path(str(photo)))
    sidecar.write_text(DARKTABLE_SIDECAR, "utf-8")
    write_sidecar(str(photo), rating=4, label="Green")
    tags = exiftool(sidecar)
    assert tags["Rating"] == 4 and tags["Label"] == "Green" and tags["Subject"] == ["wedding", "café & cake"]
    assert tags["DerivedFrom"] == "photo.jpg"


@pytest.mark.parametrize("ci", ["", "true"])
def test_a_missing_tool_is_a_visible_skip_and_under_ci_a_failure(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setattr(tools.shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match="exiftool is not installed"):
        exiftool(Path("any.xmp"))


def test_element_form_rating_is_updated_in_place(photo: Path) -> None:
    sidecar = Path(sidecar_path(str(photo)))
    sidecar.write_text(
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{RDF}"><rdf:Description rdf:about="" '
        f'xmlns:xmp="{XMP}"><xmp:Rating>3</xmp:Rating></rdf:Description></rdf:RDF></x:xmpmeta>'
    )
    assert write_sidecar(str(photo), rating=5).status == "updated"
    description = ET.parse(sidecar).getroot().find(f".//{{{RDF}}}Description")
    assert [e.text for e in description.findall(f"{{{XMP}}}Rating")] == ["5"]
    assert f"{{{XMP}}}Rating" not in description.attrib


def test_unchanged_sidecar_is_not_rewritten_and_dry_run_writes_nothing(photo: Path) -> None:
    assert write_sidecar(str(photo), rating=3, dry_run=True).status == "created"
    assert not Path(sidecar_path(str(photo))).exists()
    write_sidecar(str(photo), rating=3)
    stat = Path(sidecar_path(str(photo))).stat()
    assert write_sidecar(str(photo), rating=3).status == "unchanged"
    assert Path(sidecar_path(str(photo))).stat().st_mtime_ns == stat.st_mtime_ns
    assert write_sidecar(str(photo), rating=4, dry_run=True).status == "updated"
    assert "3" in properties(Path(sidecar_path(str(photo)))).values()
    assert Path(sidecar_path(str(photo))).stat().st_mtime_ns == stat.st_mtime_ns


@pytest.mark.parametrize(("rating", "label"), [(6, None), (-1, None), (3, ""), (3, "  ")])
def test_a_rating_outside_0_to_5_or_an_empty_label_is_refused_and_nothing_written(
    photo: Path, rating: int, label: str | None
) -> None:
    """`cull` refused `--label ""`; the library took it and wrote an empty xmp:Label over the photographer's."""
    with pytest.raises(OptionError, match="0..5" if label is None else "empty label"):
        write_sidecar(str(photo), rating=rating, label=label)
    assert not Path(sidecar_path(str(photo))).exists()


@pytest.mark.parametrize(
    "content",
    [
        b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF",  # truncated
        b"\x00\x01binary garbage\xff",
        b"<notxmp><hello/></notxmp>",  # well-formed, but no rdf:RDF
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
    ],
)
def test_an_unusable_sidecar_is_left_untouched_with_a_reason(photo: Path, content: bytes) -> None:
    sidecar = Path(sidecar_path(str(photo)))
    sidecar.write_bytes(content)
    mtime = sidecar.stat().st_mtime_ns
    result = write_sidecar(str(photo), rating=5)
    assert result.status == "skipped" and "left untouched" in result.message and str(sidecar) in result.message
    assert sidecar.read_bytes() == content and sidecar.stat().st_mtime_ns == mtime


def test_a_read_only_sidecar_is_left_as_it_is_and_a_merged_one_keeps_its_permissions(photo: Path) -> None:
    """A rename replaces a file whatever its permissions: a sidecar its owner made read-only must not be
    rated (nor made writable), and a private or group-shared one must not come back with the umask's mode."""
    sidecar = Path(sidecar_path(str(photo)))
    sidecar.write_text(DARKTABLE_SIDECAR, "utf-8")
    sidecar.chmod(0o444)
    content, mtime = sidecar.read_bytes(), sidecar.stat().st_mtime_ns
    for result in (write_sidecar(str(photo), rating=5), write_sidecar(str(photo), rating=5, dry_run=True)):
        assert result.status == "skipped" and result.message == f"{sidecar}: read-only; left untouched"
        assert held_rating(result.before) == 2  # what it still holds (cull --json says so)
    cleared = restore_sidecars(str(photo), previous={})
    assert [r.status for r in cleared] == ["skipped"] and "read-only" in (cleared[0].message or "")
    assert (sidecar.read_bytes(), sidecar.stat().st_mtime_ns, sidecar.stat().st_mode & 0o777) == (content, mtime, 0o444)
    for mode in (0o600, 0o664):
        sidecar.chmod(mode)
        assert write_sidecar(str(photo), rating=mode % 5 + 1).status == "updated"
        assert sidecar.stat().st_mode & 0o777 == mode


def test_a_write_protected_folder_gets_no_sidecar(photo: Path) -> None:
    """A folder with no write bit (an archive its owner locked): `cull --xmp` run as root (a NAS container)
    created sidecars in it and renamed new ones over those there, root's permission check ignoring the bits,
    as for a read-only sidecar. Left untouched, with why, whoever runs it."""
    sidecar = Path(sidecar_path(str(photo)))
    other = photo.with_name("other.jpg")
    other.write_bytes(photo.read_bytes())
    assert write_sidecar(str(other), rating=1).status == "created"
    content = Path(sidecar_path(str(other))).read_bytes()
    photo.parent.chmod(0o555)
    try:
        result = write_sidecar(str(photo), rating=1)
        assert result.status == "skipped" and result.message == f"{sidecar}: its folder is read-only; left untouched"
        assert write_sidecar(str(other), rating=4).status == "skipped"
        assert [r.status for r in restore_sidecars(str(other), previous={})] == ["skipped"]
    finally:
        photo.parent.chmod(0o755)
    assert not sidecar.exists() and Path(sidecar_path(str(other))).read_bytes() == content


def test_quantile_stars() -> None:
    assert quantile_stars([float(v) for v in range(1, 11)]) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert quantile_stars([7.0]) == [3] and quantile_stars([2.0, 2.0, 2.0]) == [3, 3, 3]
    assert quantile_stars([9.0, 1.0]) == [4, 2]
    with pytest.raises(ValueError):
        write_sidecar("/nonexistent/photo.jpg", rating=6)


DIGIKAM_SIDECAR = """<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
   xmp:Rating="0" {labels}/>
 </rdf:RDF>
</x:xmpmeta>
"""


@pytest.mark.parametrize(
    ("labels", "kept"),
    [
        ('digiKam:ColorLabel="2" photoshop:Urgency="2"', True),  # orange: digiKam writes no xmp:Label for it
        ('photoshop:Urgency="7"', True),  # Nikon NX's colour label, which digiKam reads after its own
        ('digiKam:ColorLabel="4" photoshop:Urgency="4" xmp:Label="Green"', True),
        ('digiKam:ColorLabel="0"', False),  # digiKam's "no colour label"
        ("", False),
    ],
)
def test_a_digikam_colour_label_is_the_photographers_label(tmp_path: Path, labels: str, kept: bool) -> None:
    """digiKam keeps a colour label in digiKam:ColorLabel (and photoshop:Urgency), and adds xmp:Label only
    for the five colours Lightroom names (digiKam dmetadata_labels.cpp): a photo labelled orange in
    digiKam was relabelled by `cull --xmp --label` as if it had no label (field test)."""
    photo = tmp_path / "IMG_1.jpg"
    photo.write_bytes(b"jpeg")
    Path(sidecar_path(str(photo))).write_text(DIGIKAM_SIDECAR.format(labels=labels), "utf-8")
    kept_results = rated_by_hand(str(photo), [], label=True)
    assert [r.status for r in kept_results] == (["kept"] if kept else [])
    assert all(held_rating(r.before) == 0 for r in kept_results)  # what the kept sidecar holds: unrated
    assert rated_by_hand(str(photo), [], label=False) == []  # unrated: a rating may still be written


def digikam_labels(sidecar: str) -> dict[str, str]:
    """The sidecar's rating and every colour label digiKam reads, by prefixed name."""
    found = properties(Path(sidecar))
    names = {f"{{{XMP}}}Rating": "xmp:Rating", f"{{{XMP}}}Label": "xmp:Label"}
    names |= {"{http://www.digikam.org/ns/1.0/}ColorLabel": "digiKam:ColorLabel"}
    names |= {"{http://ns.adobe.com/photoshop/1.0/}Urgency": "photoshop:Urgency"}
    return {names[key.rsplit("@", 1)[1]]: v for key, v in found.items() if key.rsplit("@", 1)[-1] in names}


@pytest.mark.parametrize(("label", "colour"), [("Red", "1"), ("purple", "6"), ("aesthete pick", "0")])
def test_a_label_replacing_a_digikam_colour_label_is_what_digikam_shows_and_clearing_puts_it_back(
    tmp_path: Path, label: str, colour: str
) -> None:
    """`cull --xmp --overwrite-ratings --label Red` on a photo labelled orange in digiKam wrote xmp:Label and
    left digiKam:ColorLabel, which digiKam reads first: it still showed orange (field test). The colour
    labels the sidecar has are set to digiKam's id of the label (0, none, for a label that is no colour of
    digiKam's), and clearing puts back exactly what it held; a colour changed since in digiKam is theirs."""
    photo = tmp_path / "IMG_1.jpg"
    photo.write_bytes(b"jpeg")
    sidecar = sidecar_path(str(photo))
    Path(sidecar).write_text(
        DIGIKAM_SIDECAR.format(labels='digiKam:ColorLabel="2" photoshop:Urgency="2"').replace('"0"', '"3"'), "utf-8"
    )
    held = digikam_labels(sidecar)
    assert held == {"xmp:Rating": "3", "digiKam:ColorLabel": "2", "photoshop:Urgency": "2"}

    written = write_sidecar(str(photo), rating=1, label=label)
    assert written.status == "updated" and written.before == ("3", None, "2", "2")
    assert digikam_labels(sidecar) == {
        "xmp:Rating": "1", "xmp:Label": label, "digiKam:ColorLabel": colour, "photoshop:Urgency": colour,
    }  # fmt: skip
    previous = {sidecar: written.before}
    assert still_as_written(str(photo), [], rating=1, label=label, previous=previous)

    [restored] = restore_sidecars(str(photo), previous=previous, label=True)
    assert restored.status == "restored" and digikam_labels(sidecar) == held

    # Relabelled in digiKam since (to a colour it keeps in its own properties alone): no longer aesthete's.
    write_sidecar(str(photo), rating=1, label=label)
    relabelled = Path(sidecar).read_text("utf-8").replace(f'ColorLabel="{colour}"', 'ColorLabel="8"')
    Path(sidecar).write_text(relabelled, "utf-8")
    assert not still_as_written(str(photo), [], rating=1, label=label, previous=previous)


def test_a_label_adds_no_digikam_colour_label_to_a_sidecar_without_one(photo: Path) -> None:
    written = write_sidecar(str(photo), rating=1, label="Red")
    assert digikam_labels(written.sidecar) == {"xmp:Rating": "1", "xmp:Label": "Red"}
    assert still_as_written(str(photo), [], rating=1, label="Red", previous={written.sidecar: written.before})


def test_a_sidecar_that_cannot_be_written_is_skipped_with_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder without write permission (read-only for a user who is not root) or a full disk: the write
    raised through `cull --xmp` as a traceback, losing the record of the sidecars already written; it is a
    sidecar left untouched, with why, as a read-only sidecar is."""
    from aesthete import xmp

    photo = tmp_path / "IMG_1.jpg"
    photo.write_bytes(b"jpeg")
    rated = write_sidecar(str(photo), rating=1)
    before = Path(rated.sidecar).read_bytes()

    @contextmanager
    def refused(path: str, **_: object):
        raise PermissionError(13, "Permission denied", path)
        yield path

    monkeypatch.setattr(xmp, "atomic_path", refused)
    result = write_sidecar(str(photo), rating=3)
    assert result.status == "skipped"
    assert result.message.endswith(": cannot write it (Permission denied); left untouched")
    [undone] = restore_sidecars(str(photo), previous={})
    assert undone.status == "skipped" and "Permission denied" in undone.message
    assert Path(rated.sidecar).read_bytes() == before
