"""XMP sidecars: the picks' ratings where photo managers look for them, without touching a photo.

Naming: the sidecar of ``IMG_1.jpg`` is ``IMG_1.jpg.xmp`` (:func:`sidecar_path`). That is what darktable
(``<basename>.<extension>.xmp``) and digiKam (its default) read and write, and what Immich and exiftool
find; it also keeps ``IMG_1.jpg`` and ``IMG_1.png`` from sharing one sidecar. Adobe's convention,
``IMG_1.xmp``, is used by Lightroom and Bridge only for camera RAW files; for JPEG, PNG, TIFF, WebP and
HEIC Lightroom reads XMP from inside the file and ignores sidecars, and writing into an original is
what aesthete never does. Lightroom users import the exported album (the manifest says which photos
were picked) or copy the sidecar into a copy with exiftool.

A camera RAW (alone, or the companion of its JPEG: one photo, one rating) gets both sidecars
(:func:`sidecar_paths`): ``IMG_1.CR2.xmp`` for darktable and digiKam, and ``IMG_1.xmp`` for Lightroom
Classic and Bridge / Camera Raw, which read it on import or with "Read Metadata from Files". The
Adobe one is merged like any other, so its develop settings survive.

What is written: ``xmp:Rating`` (an integer 0..5, the XMP basic schema) and optionally ``xmp:Label``
(free text; Lightroom and Bridge show it as the colour label of that name). digiKam shows the colour of
its own ``digiKam:ColorLabel`` (else ``photoshop:Urgency``) before ``xmp:Label``, so where a sidecar
already has either, a label sets it too, to digiKam's id of that colour (0, no colour label, for a label
that names none of digiKam's). An existing sidecar is merged: it is parsed, those properties are set
where they already are (attribute or element form) or added to the first ``rdf:Description``, and every
other element, attribute, namespace prefix and comment is written back as it was. A sidecar that does not
parse as XMP, or that is read-only, is left untouched and reported. Writes are atomic (temporary file, then
rename), keeping the sidecar's permissions.
"""

from __future__ import annotations

import os
import re
import stat
import xml.etree.ElementTree as ET
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aesthete.errors import AestheteError, OptionError
from aesthete.fileops import atomic_path
from aesthete.formats import raw_format

PICK_RATING = 1
"""Rating of a pick without ``--stars``: one star, the usual 'keeper' mark of a first culling pass, so
the photographer's own 2-5 star grading of the keepers is still to come."""

MAX_SIDECAR_BYTES = 16 << 20  # a sidecar with a long darktable history is ~100 kB; beyond this is not XMP

X = "adobe:ns:meta/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XMP = "http://ns.adobe.com/xap/1.0/"
RATING, LABEL = f"{{{XMP}}}Rating", f"{{{XMP}}}Label"  # the two properties aesthete writes
# Where digiKam keeps a colour label, read before xmp:Label: its own id (1-9; 0 is "none"), else Nikon NX's
# photoshop:Urgency. It writes xmp:Label only for the five colours Lightroom names (dmetadata_labels.cpp).
COLOUR_LABELS = ("{http://www.digikam.org/ns/1.0/}ColorLabel", "{http://ns.adobe.com/photoshop/1.0/}Urgency")
# digiKam's colour ids (NoColorLabel 0 .. WhiteLabel 9, digiKam globals.h); "purple" is the name Lightroom gives
# digiKam's magenta (digiKam reads and writes xmp:Label "Purple" as MagentaLabel, dmetadata_labels.cpp).
DIGIKAM_COLOURS = {
    "red": 1, "orange": 2, "yellow": 3, "green": 4, "blue": 5, "magenta": 6, "purple": 6,
    "gray": 7, "grey": 7, "black": 8, "white": 9,
}  # fmt: skip
MARKED = (RATING, LABEL, *COLOUR_LABELS)  # what a sidecar held before aesthete wrote it, in :data:`Marks` order
_PACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
_PACKET_END = '\n<?xpacket end="w"?>\n'
_NEW_SIDECAR = (
    f'<x:xmpmeta xmlns:x="{X}" x:xmptk="aesthete"><rdf:RDF xmlns:rdf="{RDF}">'
    '<rdf:Description rdf:about=""/></rdf:RDF></x:xmpmeta>'
)


class _Builder(ET.TreeBuilder):
    """A tree builder that keeps comments and remembers each namespace's prefix, so the merged sidecar
    is written back with the prefixes it came with."""

    def __init__(self) -> None:
        super().__init__(insert_comments=True)
        self.prefixes: dict[str, str] = {}  # URI -> prefix

    def start_ns(self, prefix: str, uri: str) -> None:
        self.prefixes.setdefault(uri, prefix)


class XmpError(AestheteError):
    """An existing sidecar that cannot be merged safely; the message says why, in one line."""


# A sidecar's xmp:Rating, xmp:Label, digiKam:ColorLabel and photoshop:Urgency (:data:`MARKED`) as written there;
# None: absent (or, for the colour labels of a record older than them, not known).
Marks = tuple[str | None, str | None, str | None, str | None]


@dataclass
class SidecarResult:
    photo: str
    sidecar: str
    # created | updated | unchanged | kept (the photographer's rating, left as it was) | cleared | restored (set
    # back to what it held before aesthete wrote it) | skipped (left as it was: unusable, read-only or unwritable)
    status: str
    message: str | None = None
    # What the sidecar held before this write (:data:`MARKED`, as text): for a kept or skipped one, what it still
    # holds. None: no sidecar there, or one that could not be read.
    before: Marks | None = None


def sidecar_path(photo: str) -> str:
    """``IMG_1.jpg`` -> ``IMG_1.jpg.xmp`` (darktable / digiKam naming; see the module docstring)."""
    return photo + ".xmp"


def sidecar_paths(photo: str, companions: Sequence[str] = ()) -> list[str]:
    """Every sidecar of a photo and its RAW companions: each file's :func:`sidecar_path` and, for a RAW,
    Adobe's ``IMG_1.xmp`` too (see the module docstring)."""
    paths: list[str] = []
    for path in (photo, *companions):
        for sidecar in (sidecar_path(path), os.path.splitext(path)[0] + ".xmp" if raw_format(path) else None):
            if sidecar and sidecar not in paths:
                paths.append(sidecar)
    return paths


def quantile_stars(values: Sequence[float]) -> list[int]:
    """1..5 stars per value by its quintile among ``values`` (mid-rank, so ties share their stars and a
    lone photo gets 3): the top fifth of a shoot gets 5 stars, whatever the model's score scale."""
    ordered = sorted(values)
    n = len(ordered)
    out = []
    for value in values:
        below, through = bisect_left(ordered, value), bisect_right(ordered, value)
        out.append(min(5, 1 + int(5 * (below + (through - below) / 2) / n)))
    return out


def write_sidecars(
    photo: str, companions: Sequence[str] = (), *, rating: int, label: str | None = None, dry_run: bool = False
) -> list[SidecarResult]:
    """:func:`write_sidecar` into every one of :func:`sidecar_paths`; a companion deleted since the scan gets
    none (it would be an orphan)."""
    present = [c for c in companions if os.path.lexists(c)]
    return [
        write_sidecar(photo, rating=rating, label=label, dry_run=dry_run, path=path)
        for path in sidecar_paths(photo, present)
    ]


def digikam_colour(label: str) -> str:
    """digiKam's colour id (as text, the way it writes it) for a label: ``Red`` -> ``1``; ``0`` (no colour
    label) for a label that names none of digiKam's colours."""
    return str(DIGIKAM_COLOURS.get(label.strip().lower(), 0))


def write_sidecar(
    photo: str, *, rating: int, label: str | None = None, dry_run: bool = False, path: str | None = None
) -> SidecarResult:
    """Set ``xmp:Rating`` (and ``xmp:Label`` when given, with digiKam's colour label where the sidecar has
    one) in ``photo``'s sidecar (or the one at ``path``), creating or merging it; the result's ``before`` is
    what the sidecar held. A sidecar that is a symbolic link is written through the link (the photographer's
    arrangement stays)."""
    if not 0 <= rating <= 5:
        raise OptionError(f"an XMP rating is 0..5, not {rating}")
    if label is not None and not label.strip():  # an empty xmp:Label would blank the photographer's own
        raise OptionError("an XMP label needs some text, not an empty label")
    path = path or sidecar_path(photo)
    try:
        existing = _read(path)
    except XmpError as exc:
        return SidecarResult(photo, path, "skipped", f"{path}: {exc}; left untouched")
    tree, prefixes = existing if existing else (ET.fromstring(_NEW_SIDECAR), {X: "x", RDF: "rdf"})
    wanted = {RATING: str(rating)}
    if label is not None:
        wanted[LABEL] = label
        # digiKam shows its own colour label before xmp:Label: left as it was, it would still show the old one.
        # Only where the sidecar has it: a sidecar without it already shows xmp:Label in digiKam.
        wanted |= {name: digikam_colour(label) for name in COLOUR_LABELS if property_values(tree, name)}
    before = _marks(tree)
    try:
        changed = _apply(tree, wanted)
    except XmpError as exc:
        return SidecarResult(photo, path, "skipped", f"{path}: {exc}; left untouched")
    status = "unchanged" if existing and not changed else "updated" if existing else "created"
    if status != "unchanged" and (locked := _write_protected(path)):
        return SidecarResult(photo, path, "skipped", f"{path}: {locked}; left untouched", before if existing else None)
    if not dry_run and status != "unchanged" and (problem := _save(path, tree, prefixes)):
        return SidecarResult(photo, path, "skipped", problem, before if existing else None)
    return SidecarResult(photo, path, status, before=before)


def rated_by_hand(photo: str, companions: Sequence[str], *, label: bool) -> list[SidecarResult]:
    """When a sidecar of ``photo`` (or of its companions) already holds a rating other than 0 (unrated), or,
    with ``label``, a label (``xmp:Label``, or digiKam's colour label: :data:`COLOUR_LABELS`): a ``kept``
    result for each of its sidecars, which the caller leaves as they are (it has checked that the rating is
    not one aesthete wrote), its ``before`` what the sidecar holds. Empty when nothing there is rated; an
    unusable sidecar counts as nothing rated here (writing it is then skipped, and reported)."""
    paths = sidecar_paths(photo, [c for c in companions if os.path.lexists(c)])
    held: dict[str, Marks] = {}
    rated = False
    for path in paths:
        try:
            existing = _read(path)
        except XmpError:
            continue
        if existing is None:
            continue
        held[path] = marks = _marks(existing[0])
        rating, text, *_ = marks
        if (rating is not None and _as_int(rating) != 0) or (label and (text or _colour_label(existing[0]))):
            rated = True
    if not rated:
        return []
    message = "already rated by the photographer; left as it is (--overwrite-ratings replaces it)"
    return [SidecarResult(photo, p, "kept", message, held.get(p)) for p in paths if os.path.lexists(p)]


def held_rating(marks: Marks | None) -> int | None:
    """The ``xmp:Rating`` in ``marks`` (what a sidecar holds) as a number; None where there is none, or it is
    not a whole number."""
    return _as_int(marks[0]) if marks and marks[0] is not None else None


def still_as_written(
    photo: str,
    companions: Sequence[str],
    *,
    rating: int,
    label: str | None,
    previous: dict[str, Marks] | None = None,
) -> bool:
    """Whether the sidecars of ``photo`` (and its companions) still say what aesthete wrote: at least one
    exists, and every one that exists has ``rating`` (and ``label``, when aesthete wrote one, and its
    digiKam colour where ``previous`` says the sidecar had a colour label that the label replaced). False
    once the photographer changed any of them (in digiKam, perhaps to a colour it keeps only in
    digiKam:ColorLabel): such a sidecar is theirs now."""
    seen = False
    for path in sidecar_paths(photo, [c for c in companions if os.path.lexists(c)]):
        try:
            existing = _read(path)
        except XmpError:
            return False
        if existing is None:
            continue
        seen = True
        root = existing[0]
        if [_as_int(v) for v in property_values(root, RATING)] != [rating]:
            return False
        if label is None:
            continue
        held = dict(zip(MARKED, (previous or {}).get(path, ())))
        if property_values(root, LABEL) != [label] or any(
            held.get(name) is not None and property_values(root, name) != [digikam_colour(label)]
            for name in COLOUR_LABELS
        ):
            return False
    return seen


def _colour_label(root: ET.Element) -> bool:
    """Whether the sidecar holds a colour label the way digiKam (or Nikon NX) writes one."""
    return any(_as_int(value) not in (None, 0) for name in COLOUR_LABELS for value in property_values(root, name))


def _as_int(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def restore_sidecars(
    photo: str,
    companions: Sequence[str] = (),
    *,
    previous: dict[str, Marks],
    label: bool = False,
    dry_run: bool = False,
) -> list[SidecarResult]:
    """Undo what aesthete wrote into each existing sidecar of ``photo`` and its companions: ``xmp:Rating``
    (and ``xmp:Label`` with ``label``) set back to what ``previous`` says the sidecar held before
    (sidecar path -> :data:`Marks`), removed where it held none or ``previous`` does not say; with ``label``
    digiKam's colour labels set back where ``previous`` has them (aesthete sets them only where the sidecar
    had them, so they are never removed); everything else kept. Status ``restored`` (a value put back),
    ``cleared`` (removed), ``unchanged``, or ``skipped`` with why. The caller checks first
    (:func:`still_as_written`) that the ratings are still aesthete's."""
    results = []
    for path in sidecar_paths(photo, [c for c in companions if os.path.lexists(c)]):
        try:
            existing = _read(path)
        except XmpError as exc:
            results.append(SidecarResult(photo, path, "skipped", f"{path}: {exc}; left untouched"))
            continue
        if existing is None:
            continue
        tree, prefixes = existing
        held = dict(zip(MARKED, previous.get(path, ())))
        wanted = {RATING: held.get(RATING)} | ({LABEL: held.get(LABEL)} if label else {})
        put_back = {name: value for name, value in wanted.items() if value is not None}
        if label:
            put_back |= {name: held[name] for name in COLOUR_LABELS if held.get(name) is not None}
        changed = _apply(tree, put_back) if put_back else False
        removed = _remove(tree, [name for name, value in wanted.items() if value is None])
        status = "unchanged" if not (changed or removed) else "restored" if put_back else "cleared"
        if status != "unchanged" and (locked := _write_protected(path)):
            results.append(SidecarResult(photo, path, "skipped", f"{path}: {locked}; left untouched"))
            continue
        problem = _save(path, tree, prefixes) if status != "unchanged" and not dry_run else None
        results.append(SidecarResult(photo, path, "skipped" if problem else status, problem))
    return results


def _marks(root: ET.Element) -> Marks:
    """The sidecar's :data:`MARKED` properties (the first value of each, as written), None where absent."""
    rating, label, colour, urgency = (values[0] if (values := property_values(root, name)) else None for name in MARKED)
    return rating, label, colour, urgency


def _remove(root: ET.Element, names: Sequence[str]) -> bool:
    """Remove the properties ``names`` (attribute or element form) from every description; whether any was."""
    removed = False
    for description in descriptions(root) or []:
        for name in names:
            if name in description.attrib:
                del description.attrib[name]
                removed = True
            for child in description.findall(name):
                description.remove(child)
                removed = True
    return removed


def _read(path: str) -> tuple[ET.Element, dict[str, str]] | None:
    """The parsed sidecar and its namespace prefixes (URI -> prefix), or None when there is none."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_SIDECAR_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise XmpError(f"cannot read it ({exc.strerror})") from None
    if len(data) > MAX_SIDECAR_BYTES:
        raise XmpError(f"larger than {MAX_SIDECAR_BYTES >> 20} MiB, not an XMP sidecar")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmpError("declares a DTD or entities, which XMP never does")
    builder = _Builder()
    parser = ET.XMLParser(target=builder)
    try:
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as exc:
        raise XmpError(f"not well-formed XML ({exc})") from None
    if descriptions(root) is None:
        raise XmpError("no rdf:RDF element, so not an XMP packet")
    return root, builder.prefixes


def property_values(root: ET.Element, name: str) -> list[str]:
    """Every value of the simple property ``name`` (Clark notation) in a packet, written as an attribute
    or as an element of any description: the reading side, used by :mod:`aesthete.ratings`."""
    found = []
    for description in descriptions(root) or []:
        if name in description.attrib:
            found.append(description.attrib[name])
        found += [(child.text or "").strip() for child in description.findall(name)]
    return found


def descriptions(root: ET.Element) -> list[ET.Element] | None:
    """The ``rdf:Description`` elements of the packet's ``rdf:RDF`` (None when there is no ``rdf:RDF``)."""
    rdf = root if root.tag == f"{{{RDF}}}RDF" else root.find(f".//{{{RDF}}}RDF")
    return None if rdf is None else rdf.findall(f"{{{RDF}}}Description")


def _apply(root: ET.Element, wanted: dict[str, str]) -> bool:
    """Set each property where it already is (attribute or simple element), else as an attribute of the
    first description. Returns whether anything changed."""
    found = descriptions(root)
    if found is not None and not found:
        rdf = root if root.tag == f"{{{RDF}}}RDF" else root.find(f".//{{{RDF}}}RDF")
        found = [ET.SubElement(rdf, f"{{{RDF}}}Description", {f"{{{RDF}}}about": ""})]
    changed = False
    for name, value in wanted.items():
        present = False
        for description in found or []:
            if name in description.attrib:
                present = True
                changed |= description.attrib[name] != value
                description.set(name, value)
            for child in description.findall(name):
                if len(child):
                    raise XmpError(f"its {name.split('}')[1]} is a structure, not a simple value")
                present = True
                changed |= (child.text or "").strip() != value
                child.text = value
        if not present:
            found[0].set(name, value)
            changed = True
    return changed


def _write_protected(path: str) -> str | None:
    """Why the sidecar at ``path`` is not to be written, or None: it is read-only, or its folder is (where a
    new sidecar, or the one renamed over it, is made). Read-only: no write permission for us, or no write bit
    at all, which root's permission check ignores. Its owner locked it; a rename would get round that."""
    target = os.path.realpath(path)  # a sidecar that is a link is written where it leads
    for checked, why in ((target, "read-only"), (os.path.dirname(target), "its folder is read-only")):
        try:
            mode = os.stat(checked).st_mode
        except OSError:
            continue
        if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) or not os.access(checked, os.W_OK):
            return why
    return None


def _save(path: str, root: ET.Element, prefixes: dict[str, str]) -> str | None:
    """Replace the sidecar at ``path`` (through a symbolic link: the photographer's arrangement stays)
    atomically, with the permissions it had (a new file's would be the umask's). None when done, else why
    not, as a skipped sidecar's message (a folder without write permission, a full disk): it is untouched."""
    target = os.path.realpath(path)
    try:
        mode: int | None = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    try:
        with atomic_path(target) as temporary:
            Path(temporary).write_bytes(_serialise(root, {XMP: "xmp", **prefixes}))
            if mode is not None:
                os.chmod(temporary, mode)
    except OSError as exc:
        return f"{path}: cannot write it ({exc.strerror or exc}); left untouched"
    return None


def _serialise(root: ET.Element, prefixes: dict[str, str]) -> bytes:
    """The packet as UTF-8 bytes, each namespace under the prefix the sidecar used (ElementTree would
    otherwise invent ``ns0``-style prefixes, which are legal but make the file harder to read by hand)."""
    for uri, prefix in prefixes.items():
        if prefix and not re.fullmatch(r"ns\d+", prefix):  # ElementTree reserves ns0, ns1...: it picks its own
            ET.register_namespace(prefix, uri)
    text = ET.tostring(root, encoding="unicode")
    return (_PACKET_BEGIN + text + _PACKET_END).encode("utf-8")
