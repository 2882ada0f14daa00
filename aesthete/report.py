"""``aesthete report``: a contact sheet in one HTML file that opens anywhere and can be mailed as is.

Photos appear in score order with a thumbnail (JPEG, longer side :data:`THUMB_SIDE` px, embedded as a
``data:`` URI), the predicted distribution as an inline SVG bar chart with the mean marked, mean, spread,
technical quality, flags, pixel size and EXIF line. A burst or near-duplicate group is one box, placed
where its best frame ranks and holding all its frames in score order; the frame ``cull`` would keep is
outlined (the best-ranked one it may pick with no face flagged, :func:`aesthete.select.kept_frames`; none
when it may pick none, and the box says so), and each other frame that cull passes over for a reason of
its own says why, as ``groups``.
Each face found is drawn over the thumbnail as an outline placed in percent of the picture, red and
dashed when a face flag is raised for it.

Thumbnails are made from the original with the same decoder ``score`` uses (EXIF orientation, colour
profile to sRGB, reduced-size JPEG decoding), in parallel threads (Pillow releases the GIL while
decoding). Images are ``loading="lazy"`` and cards use ``content-visibility: auto``, so a sheet of
thousands of photos opens at once. Every name, path, EXIF string and label is HTML-escaped, and the page
carries a Content-Security-Policy that forbids all scripts: a file called ``<img onerror=...>.jpg`` is
shown as text, and nothing in the page can run or fetch anything.
"""

from __future__ import annotations

import base64
import html
import io
import os
import shlex
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import Any

from PIL import Image

from aesthete.decode import DecodeError, decode
from aesthete.exif import exif_line
from aesthete.faces import Face, face_flags
from aesthete.formats import raw_format
from aesthete.groups import annotate, ensure_groups
from aesthete.select import NO_AESTHETIC_SCORES, TECHNICAL_QUALITY, Ranking, kept_frames, scope_ranking
from aesthete.store import FILE_STATE_NOTES, Store, file_state, now_iso
from aesthete.wording import as_stored, counted, printable

THUMB_SIDE = 256
THUMB_QUALITY = 80  # ~10-20 kB per thumbnail: a 3,000-photo sheet stays around 50 MB
CHART_W, CHART_H = 256, 40
EARLIER_NUMBERS = "the numbers are of the earlier version"  # of a photo changed on disk since `score` read it


@dataclass
class Thumbnail:
    uri: str | None  # data: URI of the JPEG, or None when the photo could not be read
    width: int = 0
    height: int = 0
    problem: str | None = None


def thumbnail(path: str) -> Thumbnail:
    """A small upright sRGB JPEG of the photo at ``path``; never raises for a bad or vanished file."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
        decoded = decode(data, target=_fit, raw=raw_format(path))
    except OSError as exc:
        return Thumbnail(None, problem=exc.strerror or str(exc))
    except DecodeError as exc:
        return Thumbnail(None, problem=str(exc))
    image = decoded.image
    image.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=THUMB_QUALITY, optimize=True)
    uri = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return Thumbnail(uri, image.width, image.height)


def _fit(width: int, height: int) -> tuple[int, int]:
    """The decode size for a thumbnail: longer side THUMB_SIDE, never enlarged."""
    scale = min(1.0, THUMB_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def build_report(
    store: Store,
    roots: Sequence[str] = (),
    *,
    model: str | None = None,
    weights: str | None = None,
    workers: int | None = None,
) -> tuple[str, Ranking]:
    """The HTML of the contact sheet of ``roots`` (or of the last ``score`` run's folders) and the ranking
    it shows. ``workers`` threads make the thumbnails (default: one per core)."""
    roots, ranking = scope_ranking(store, roots, model=model, weights=weights)
    folders = [os.path.abspath(root) for root in roots]  # as the sheet names them: read later, from elsewhere
    # A file score could not read has no card: said in the notes (the sheet's header and the terminal), or a
    # sheet mailed as "the shoot" is short of a photo that no one knows of.
    if failed := len(store.failures(roots)):
        listing = shlex.join(["aesthete", "failures", *folders])
        verb = "is" if failed == 1 else "are"
        ranking.notes.append(
            f"{counted(failed, 'file')} could not be read and {verb} not in this sheet (`{listing}` says why)"
        )
    groups = ensure_groups(store)
    blocks = list(_blocks(ranking.rows, groups))
    ordered = [row for block in blocks for row in block]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        thumbs = dict(zip((id(r) for r in ordered), pool.map(thumbnail, (r["real_path"] for r in ordered))))
    places = {id(row): place for place, row in enumerate(ranking.rows, start=1)}
    # A photo deleted or edited since `score` is still listed (it may be on a drive that is not mounted);
    # its card says so rather than "No such file or directory", or a new picture beside the old numbers.
    states = {id(row): file_state(row["real_path"], row["size"], row["mtime_ns"]) for row in ordered}
    picks, why = kept_frames(ranking.rows)  # (rows carry their group since _blocks)
    chunks = []
    for block in blocks:
        if len(block) == 1:
            row = block[0]
            chunks.append(_card(row, places[id(row)], thumbs[id(row)], ranking, state=states[id(row)]))
            continue
        # As `groups` says it: the frame cull keeps, or none, and why each other frame is not it.
        kept = picks.get(block[0]["group"])
        cards = "".join(_card(row, places[id(row)], thumbs[id(row)], ranking, state=states[id(row)],
                              best=row is kept, why=why.get(id(row)))
                        for row in block)  # fmt: skip
        outcome = "outlined: the one cull keeps" if kept is not None else "cull keeps none of them"
        label = f"group {block[0]['group']} · {len(block)} similar frames · {outcome}"
        chunks.append(f'<section class="group" aria-label="{_e(label)}"><h2>{_e(label)}</h2>{cards}</section>')
    template = Template(resources.files("aesthete").joinpath("templates/report.html").read_text("utf-8"))
    page = template.substitute(
        title=_e("aesthete contact sheet"),
        summary=_summary(ranking, folders, blocks, Counter(states.values())),
        cards="\n".join(chunks),
    )
    return page, ranking


def _blocks(rows: list[dict[str, Any]], groups: dict[str, tuple[int, int]]) -> Iterator[list[dict[str, Any]]]:
    """Rows in score order, each group's members together at the place of its best member."""
    members = annotate(rows, groups)
    shown: set[int] = set()
    for row in rows:
        if row["group"] not in shown:
            shown.add(row["group"])
            yield members[row["group"]]


def _summary(ranking: Ranking, roots: Sequence[str], blocks: list[list[dict[str, Any]]], states: Counter[str]) -> str:
    basis = (
        f"{ranking.key.model} {'score' if ranking.output == 'score' else 'mean score'} "
        f"(weights {ranking.weights or ranking.key.weights_id})"
        if ranking.basis == "aesthetic"
        else TECHNICAL_QUALITY
    )
    if NO_AESTHETIC_SCORES in ranking.notes:  # said in the first line, not again below it
        basis += ": no aesthetic scores yet"
    grouped = [b for b in blocks if len(b) > 1]
    lines = [
        f"{counted(len(ranking.rows), 'photo')} in {', '.join(roots)}, ranked by {basis}.",
        f"{counted(len(grouped), 'group')} of similar frames ({counted(sum(map(len, grouped)), 'photo')}) boxed.",
        *(note for note in ranking.notes if note != NO_AESTHETIC_SCORES),
    ]
    if states["missing"]:
        lines.append(f"{counted(states['missing'], 'photo')} {FILE_STATE_NOTES['missing']}: no preview.")
    if states["changed"]:
        changed = f"{counted(states['changed'], 'photo')} {FILE_STATE_NOTES['changed']}"
        lines.append(f"{changed}: {EARLIER_NUMBERS} (`aesthete score` their folders).")
    lines.append(f"Made {now_iso()}.")
    # A folder named in another encoding than UTF-8 holds lone surrogates, which no page can be written with.
    return "\n".join(f"<p>{_e(as_stored(line))}</p>" for line in lines)


def _card(
    row: dict[str, Any],
    place: int,
    thumb: Thumbnail,
    ranking: Ranking,
    *,
    state: str = "unchanged",
    best: bool = False,
    why: str | None = None,
) -> str:
    """One photo's figure; ``state``: its :func:`aesthete.store.file_state`, ``best``: the frame cull keeps
    of its group, ``why``: why cull does not keep it."""
    name = os.path.basename(row["path"])
    if state == "missing":
        image = f'<div class="missing">{_e(FILE_STATE_NOTES["missing"])}</div>'
    elif thumb.uri:
        image = (
            f'<div class="frame"><img src="{thumb.uri}" width="{thumb.width}" height="{thumb.height}" '
            f'loading="lazy" decoding="async" alt="{_e(printable(name))}">{_face_boxes(row.get("faces") or [])}</div>'
        )
    else:
        image = f'<div class="missing">no preview: {_e(thumb.problem or "unreadable")}</div>'
    if row.get("dist"):
        chart = _chart(row["dist"], row["mean"])
        numbers = f"mean {row['mean']:.2f} · spread {row['std']:.2f} · technical {row['technical']:.2f}"
    elif row.get("mean") is not None:  # one number (a score model, a personal head): no distribution
        # The scale of that number: 0-5 stars for a personal head, AVA's 1-10 for the published score models.
        low, high = (0.0, 5.0) if row.get("model") == "personal" else (1.0, 10.0)
        width = max(0.0, min(1.0, (row["mean"] - low) / (high - low))) * 100
        chart = f'<div class="meter" title="score"><span style="width:{width:.0f}%"></span></div>'
        numbers = f"score {row['mean']:.2f} · technical {row['technical'] or 0:.2f}"
    else:
        width = max(0.0, min(1.0, row["technical"] or 0.0)) * 100
        chart = f'<div class="meter" title="technical quality"><span style="width:{width:.0f}%"></span></div>'
        numbers = f"no aesthetic score · technical {row['technical'] or 0:.2f}"
    flags = "".join(f'<span class="flag">{_e(flag)}</span>' for flag in row["flags"])
    badge = '<span class="badge">cull keeps</span>' if best else ""
    reason = f'<div class="why">{_e(printable(f"cull: {why}"))}</div>' if why else ""
    if state == "changed":
        reason += f'<div class="why">{_e(FILE_STATE_NOTES["changed"])}: {EARLIER_NUMBERS}</div>'
    return (
        f'<figure class="photo{" best" if best else ""}">'
        f'<div class="thumb">{image}</div><figcaption>'
        f'<div class="line"><span class="rank">#{place}</span>{badge}</div>'
        f'<div class="name" title="{_e(printable(row["path"]))}">{_e(printable(name))}</div>'
        f'{chart}<div class="nums">{_e(numbers)}</div>'
        f'<div>{flags}</div>{reason}<div class="exif">{_e(_details(row))}</div>'
        "</figcaption></figure>\n"
    )


def _details(row: dict[str, Any]) -> str:
    """The photo's upright pixel size, then its EXIF line: two frames of a box may look alike, and a smaller
    export of one is told only by its size."""
    size = f"{row['width']}×{row['height']}" if row.get("width") and row.get("height") else ""
    return " · ".join(part for part in (size, exif_line(row)) if part)


def _face_boxes(found: list[dict[str, Any]]) -> str:
    """One outline per face over the thumbnail, positioned in percent of the picture (the thumbnail is
    the whole upright picture, and the boxes are fractions of it), with its numbers as a tooltip."""
    boxes = []
    for number, record in enumerate(found, start=1):
        face = Face.from_dict(record)
        x0, y0, x1, y1 = (100 * v for v in face.box)
        flags = face_flags([face])
        eyes = "/".join("?" if e is None else f"{e:.3f}" for e in face.eyes)
        relative = "?" if face.relative_sharpness is None else f"{face.relative_sharpness:.2f}"
        tip = f"face {number}: confidence {face.confidence:.2f}, eyes {eyes}, sharpness {relative} of the photo's"
        tip += f" ({', '.join(flags)})" if flags else ""
        boxes.append(
            f'<span class="face{" flagged" if flags else ""}" title="{_e(tip)}" '
            f'style="left:{x0:.1f}%;top:{y0:.1f}%;width:{x1 - x0:.1f}%;height:{y1 - y0:.1f}%"></span>'
        )
    return "".join(boxes)


def _chart(dist: list[float], mean: float) -> str:
    """The distribution as SVG bars with the mean as a vertical line. Bins stand for scores 1..S, or
    low/high (0, 1) for a two-bin model, as in :attr:`aesthete.models.base.AestheticModel.bin_values`."""
    n = len(dist)
    first, labels = (0.0, ["low", "high"]) if n == 2 else (1.0, [str(i + 1) for i in range(n)])
    peak = max(dist) or 1.0
    step = CHART_W / n
    bars = "".join(
        f'<rect x="{i * step + 1:.1f}" y="{CHART_H - p / peak * (CHART_H - 2):.1f}" '
        f'width="{step - 2:.1f}" height="{p / peak * (CHART_H - 2):.1f}"><title>{label}: {p:.1%}</title></rect>'
        for i, (label, p) in enumerate(zip(labels, dist))
    )
    x = (mean - first + 0.5) * step
    return (
        f'<svg class="dist" viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="score distribution">'
        f'{bars}<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{CHART_H}"/></svg>'
    )


def _e(text: str) -> str:
    return html.escape(text, quote=True)


GENERATOR_MARK = b'<meta name="generator" content="aesthete">'  # in every sheet's head (templates/report.html)


def is_our_report(path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` is a contact sheet aesthete wrote (its head carries GENERATOR_MARK): one
    that ``report`` may replace; any other file there is someone's work."""
    try:
        with open(path, "rb") as stream:
            return GENERATOR_MARK in stream.read(4096)
    except OSError:
        return False
