"""Album export and reject moving: the two things ``cull`` does to files, neither touching a photo's bytes.

``export_album`` puts the picks in a folder as copies (default), symlinks, or hard links (``--mode``). A
copy is a copy-on-write clone (reflink) where the file system offers one (Btrfs, XFS...: no extra space),
else a full copy: either way the album file is its own file, so an editor that saves into it in place never
changes the original. A hard link saves space everywhere but shares the original's inode, so exactly that
can happen; it is only made when asked for. Hard links are impossible across file systems and on some (FAT,
many network shares); then the photo is copied and a notice says so. Copies keep the original's
modification time. An album name that is taken gets a ``name (2).jpg`` sibling unless it already holds
this very photo (a re-run), in which case it is left as it is: no photo is ever overwritten (a symlink or
hard link an earlier export put there is replaced by a copy when copies are asked for).
``--order-by-time`` prefixes names with the capture time (``20240501-120003_IMG_1.jpg``), so any file
browser lists the album in shooting order. Beside the photos, ``manifest.json`` records what was picked and
why (place, score, spread, technical quality, flags, group) and why each other photo was not; a re-export
into the same album replaces aesthete's own manifest, never a file of that name it did not write.

A re-export into an album (a folder holding aesthete's manifest) makes it hold this cull's picks: each file
the earlier manifest lists (a pick's photo or RAW companion) that is not an entry of this export is
removed, but only while it is still what aesthete put there: a symlink still pointing at its photo, a hard
link still of the photo's inode, or a copy of the same size and bytes as the photo. The manifest records
no size, and a content hash only of the photo, not of its companions; and a copy whose photo was since
moved, deleted or edited may hold the last of those bytes. So a copy is compared with the photo on disk,
never with the manifest: without its photo, or unlike it, it stays. Everything else in the folder stays as
it is: a file changed since, one the manifest does not list (the photographer's, an editor's sidecar),
and the outcome lists them (``left_alone``; hidden files and folders aside). A manifest is only a file:
a name in it that is not a plain file name of the album, or an "album file" that is the photo itself, is
never removed. The earlier files go before the picks are placed, so a new pick takes the name an earlier
pick leaves free; ``dry_run`` lists what would go and removes nothing.

``move_rejects`` moves the photos that were not picked, only when asked, each with its XMP sidecar;
a rename keeps bytes and modification time (across file systems: copy, check, then delete), and the
database follows the move so the next ``cull`` still finds them.

A photo's RAW companions (``IMG_1.CR2`` beside ``IMG_1.JPG``: one photo) go wherever it goes, in the
same mode, under the same new stem when a name clash renames it (``IMG_1 (2).JPG`` and
``IMG_1 (2).CR2``), so photo managers still see the pair; a move takes their sidecars along too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from aesthete import interrupts
from aesthete.errors import OptionError
from aesthete.fileops import NO_HARD_LINKS, atomic_write, clone_or_copy, copy_new, free_bundle, free_name, same_content
from aesthete.paths import is_within
from aesthete.select import Ranking, public_row
from aesthete.store import now_iso
from aesthete.xmp import sidecar_paths

MODES = ("copy", "symlink", "link")  # the first is the default
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 256 << 20  # ~1 kB a photo: far above any shoot; a larger file is not ours
MANIFEST_FIELDS = (
    "score", "output", "mean", "std", "p_high", "technical", "sharpness", "flags", "group", "group_size",
    "capture_time", "make", "camera", "lens", "content_hash",
)  # fmt: skip


@dataclass
class Placed:
    """One file put somewhere: ``how`` is clone (a copy-on-write copy), copy, symlink, link, move, or present
    (already there)."""

    source: str
    target: str
    how: str


@dataclass
class Removed:
    """An album file an earlier export placed, removed by a re-export (in a dry run: to be removed)."""

    source: str  # the photo it was placed for, as the earlier manifest gives it
    target: str
    still_picked: bool  # the photo is picked again, under another name in the album (not "no longer picked")


@dataclass
class Outcome:
    placed: list[Placed] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, one-line reason)
    notices: list[str] = field(default_factory=list)
    manifest: str | None = None
    removed: list[Removed] = field(default_factory=list)
    # A re-export: the album's files that it neither placed nor removed (the photographer's, or changed since).
    left_alone: list[str] = field(default_factory=list)


def time_prefix(row: dict[str, Any]) -> str:
    """``20240501-120003_`` from the EXIF capture time, else from the file's modification time."""
    taken = row.get("capture_time")
    moment = datetime.fromisoformat(taken) if taken else datetime.fromtimestamp(row["mtime_ns"] / 1e9)
    return moment.strftime("%Y%m%d-%H%M%S_")


def export_album(
    ranking: Ranking,
    dest: str,
    *,
    mode: str = "copy",
    order_by_time: bool = False,
    dry_run: bool = False,
    settings: dict[str, Any] | None = None,
) -> Outcome:
    """Put ``ranking.rows`` (the picks) into ``dest`` and write the manifest there; in an album an earlier
    export made, remove that export's files which are not picks now and are as it placed them (see the
    module docstring).

    ``settings`` (the selection options) are recorded in the manifest. With ``dry_run`` nothing is
    created or removed; the outcome lists what would be.
    """
    if mode not in MODES:
        raise OptionError(f"unknown export mode {mode!r}; use one of {', '.join(MODES)}")
    outcome = Outcome()
    if not (dry_run or _made_folder(dest, outcome)):
        return outcome
    # A re-export into the same album replaces aesthete's own manifest (the old one would be stale); a file of
    # that name that is not one of aesthete's manifests is never touched: the manifest takes the next name.
    manifest_path, ours = free_name(dest, MANIFEST_NAME, reuse=is_our_manifest)
    earlier = _earlier_files(manifest_path, dest) if ours else {}
    checked: dict[str, bool] = {}

    def vacant(path: str) -> bool:
        """An earlier export's file still as it placed it: to be removed unless a pick keeps it (checked once,
        as a copy is compared byte by byte)."""
        if path not in checked:
            checked[path] = path in earlier and _as_placed(path, earlier[path][1])
        return checked[path]

    # Every pick's names first: an earlier pick no longer picked frees its name for a new pick (before, the new
    # pick got `a3 (2).jpg` beside it), so the earlier files go before any is placed.
    taken: set[str] = set()
    plan: list[tuple[list[str], list[tuple[str, bool]]]] = []
    for row in ranking.rows:
        # (a companion deleted since the scan is left out, as from the sidecars and moves)
        sources = [row["real_path"], *(c for c in row.get("companions", ()) if os.path.lexists(c))]
        prefix = time_prefix(row) if order_by_time else ""
        bundle = free_bundle(
            dest, [prefix + os.path.basename(s) for s in sources], taken=taken,
            reuse=lambda i, path, sources=sources: same_content(sources[i], path), vacant=vacant,
        )  # fmt: skip
        taken.update(target for target, _ in bundle)
        plan.append((sources, bundle))
    reused = {target for _, bundle in plan for target, present in bundle if present}
    picked = {os.path.realpath(source) for sources, _ in plan for source in sources}
    _remove_earlier([path for path in earlier if path not in reused and vacant(path)], earlier, picked, outcome,
                    dry_run=dry_run)  # fmt: skip
    targets: dict[str, str] = {}
    for sources, bundle in plan:
        for source, (target, present) in zip(sources, bundle):
            # Copies asked for where an earlier export put a link to the original: the link is replaced by a
            # copy (before, it stayed, "already there", and an album copied elsewhere held links, no photos).
            relink = present and mode == "copy" and (os.path.islink(target) or os.path.samefile(source, target))
            present = present and not relink
            how = "present" if present else mode
            if not (present or dry_run):
                try:
                    how = (
                        clone_or_copy(source, target, overwrite=True)
                        if relink
                        else _place(source, target, mode, outcome.notices)
                    )
                except OSError as exc:
                    outcome.failed.append((source, _reason(exc)))
                    continue
            outcome.placed.append(Placed(source, target, how))
            targets[source] = target
    manifest = _manifest(ranking, targets, mode, settings or {})
    outcome.manifest = manifest_path
    if not dry_run:
        try:
            atomic_write(manifest_path, json.dumps(manifest, indent=2).encode(), overwrite=ours)
        except OSError as exc:  # the album is made by now: say what is missing from it, as for a photo
            outcome.failed.append((manifest_path, _reason(exc)))
            outcome.manifest = None
    if ours:
        accounted = {manifest_path, *(p.target for p in outcome.placed), *(r.target for r in outcome.removed)}
        accounted |= {path for path, _ in outcome.failed}  # an earlier pick that could not be removed: said there
        outcome.left_alone = _other_files(dest, accounted)
    return outcome


def _earlier_files(manifest: str, dest: str) -> dict[str, tuple[str, list[str]]]:
    """The album files an earlier export's ``manifest`` lists: album path -> (its pick's source, every file of
    that pick: the photo and its RAW companions). A manifest is a file anyone can edit: only a plain name is
    an album file (``../x`` or ``/x`` is not), and what is not as expected is passed over."""
    try:
        with open(manifest, "rb") as stream:
            picks = json.loads(stream.read(MAX_MANIFEST_BYTES + 1))["picks"]
    except (OSError, ValueError, LookupError, TypeError):
        return {}
    found: dict[str, tuple[str, list[str]]] = {}
    for pick in picks if isinstance(picks, list) else ():
        if not isinstance(pick, dict) or not isinstance(source := pick.get("source"), str):
            continue
        companions, companion_files = pick.get("companions"), pick.get("companion_files")
        files = [source, *(c for c in companions if isinstance(c, str))] if isinstance(companions, list) else [source]
        names = [pick.get("file"), *(companion_files if isinstance(companion_files, list) else ())]
        for name in names:
            if isinstance(name, str) and name == os.path.basename(name) and name not in ("", ".", ".."):
                found.setdefault(os.path.join(dest, name), (source, files))
    found.pop(manifest, None)
    return found


def _as_placed(path: str, files: Sequence[str]) -> bool:
    """Whether the album file at ``path`` is still what an export put there for one of ``files`` (a pick's
    photo and companions): a symlink to it, a hard link of it (the same inode), or a copy of the same size and
    bytes, while it is there to compare (a copy of a photo since moved, deleted or edited may be the last of
    those bytes). Never the photo itself, whatever a manifest says."""
    linked = os.path.islink(path)
    if not (linked or os.path.isfile(path)):
        return False
    for source in files:
        if os.path.realpath(path) == os.path.realpath(source):
            return linked  # a symlink to the photo; else the photo itself, an original
    return not linked and any(same_content(source, path) for source in files)


def _remove_earlier(
    paths: Sequence[str],
    earlier: dict[str, tuple[str, list[str]]],
    picked: set[str],
    outcome: Outcome,
    *,
    dry_run: bool,
) -> None:
    """Remove ``paths`` (earlier picks' album files, checked to be as they were placed) and record each in
    ``outcome.removed``; ``picked``: the real paths of this export's files, which tell a pick now under
    another name from a photo no longer picked. A file that cannot be removed is a failure."""
    for path in paths:
        source, files = earlier[path]
        if not dry_run:
            try:
                os.unlink(path)  # an album entry's own name: never the photo's (see _as_placed)
            except OSError as exc:
                outcome.failed.append((path, _reason(exc)))
                continue
        outcome.removed.append(Removed(source, path, any(os.path.realpath(f) in picked for f in files)))


def _other_files(dest: str, accounted: set[str]) -> list[str]:
    """The files in ``dest`` not in ``accounted``: neither folders nor hidden files (``.DS_Store``, a
    temporary file), which no photographer means as part of an album."""
    try:
        entries = sorted(os.scandir(dest), key=lambda entry: entry.name)
    except OSError:
        return []
    return [
        entry.path for entry in entries
        if not entry.name.startswith(".") and entry.path not in accounted and not entry.is_dir(follow_symlinks=False)
    ]  # fmt: skip


def is_our_manifest(path: str) -> bool:
    """Whether ``path`` is a manifest an aesthete export wrote (a JSON object with ``"tool": "aesthete"``)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_MANIFEST_BYTES + 1)
        if len(data) > MAX_MANIFEST_BYTES:
            return False
        manifest = json.loads(data)
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("tool") == "aesthete" and "picks" in manifest


def is_album(folder: str) -> bool:
    """Whether ``folder`` is an album an aesthete export made: it holds aesthete's own manifest."""
    return is_our_manifest(os.path.join(folder, MANIFEST_NAME))


def _place(source: str, target: str, mode: str, notices: list[str]) -> str:
    """Create ``target`` for ``source`` in ``mode``; returns how it was done (a failed hard link copies)."""
    if mode == "symlink":
        os.symlink(os.path.abspath(source), target)
        return "symlink"
    if mode == "link":
        try:
            os.link(source, target)
            return "link"
        except OSError as exc:
            if exc.errno not in NO_HARD_LINKS:
                raise
            notice = f"hard links are not possible into {os.path.dirname(target)} ({_reason(exc)}): copied instead"
            if notice not in notices:
                notices.append(notice)
    return clone_or_copy(source, target)


def _manifest(ranking: Ranking, targets: dict[str, str], mode: str, settings: dict[str, Any]) -> dict[str, Any]:
    def entry(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "source": row["path"],
            "companions": row.get("companions", []),
            **public_row(row, MANIFEST_FIELDS),
        }

    return {
        "created": now_iso(),
        "tool": "aesthete",
        "mode": mode,
        "ranked_by": ranking.by,
        "basis": ranking.basis,
        "output": ranking.output,
        "model": asdict(ranking.key) if ranking.key else None,
        "settings": settings,
        "notes": ranking.notes,
        "picks": [
            {
                "pick": row["pick"],
                "file": os.path.basename(targets[row["real_path"]]),
                "companion_files": [os.path.basename(targets[c]) for c in row.get("companions", ()) if c in targets],
                **entry(row),
            }
            for row in ranking.rows
            if row["real_path"] in targets
        ],
        "not_picked": [{**entry(row), "why": row["why"]} for row in ranking.others],
    }


def move_rejects(
    rows: Sequence[dict[str, Any]],
    dest: str,
    *,
    dry_run: bool = False,
    on_moved: Callable[[str, str], None] | None = None,
) -> Outcome:
    """Move each of ``rows`` (photos not picked) into ``dest``, with its RAW companions and the XMP sidecars
    they have; one already in ``dest`` stays as it is (``present``).

    ``on_moved(old, new)`` is called after each photo's and each companion's move (the CLI updates the
    database there)."""
    outcome = Outcome()
    if rows and not (dry_run or _made_folder(dest, outcome)):
        return outcome
    taken: set[str] = set()
    for row in rows:
        source = row["real_path"]
        if os.path.dirname(os.path.realpath(source)) == os.path.realpath(dest):
            # Moved there by an earlier cull (a rejects folder inside the one culled): moving it onto itself
            # only renamed it `IMG_1 (2).jpg`, its sidecars and companions too.
            outcome.placed.append(Placed(source, source, "present"))
            continue
        files = [source, *row.get("companions", ())]
        sidecars = sidecar_paths(source, files[1:])
        # Names free for the photo, its companions and all their sidecars, so they always move together.
        bundle = [
            target for target, _ in free_bundle(dest, [os.path.basename(p) for p in files + sidecars], taken=taken)
        ]
        taken.update(bundle)
        if not dry_run:
            try:
                # A Ctrl-C waits for the photo's whole bundle: stopped between the photo and its sidecar, it left
                # the sidecar behind for good (the photo is recorded at its new place, out of the culled folder).
                with interrupts.held():
                    for old, new in zip(files, bundle):
                        if old == source or os.path.lexists(old):  # a companion deleted since the scan is no error
                            _move(old, new)
                            if on_moved:
                                on_moved(old, new)
                    for old, new in zip(sidecars, bundle[len(files) :]):
                        if os.path.isfile(old):
                            _move(old, new)
            except OSError as exc:
                outcome.failed.append((source, _reason(exc)))
                continue
        outcome.placed.append(Placed(source, bundle[0], "move"))
    return outcome


def _move(source: str, target: str) -> None:
    """Rename without replacing anything; across file systems copy (keeping mtime), verify, delete."""
    if os.path.lexists(target):
        raise FileExistsError(f"{target} exists")
    try:
        os.link(source, target)  # atomic and never replaces: then drop the old name
        os.unlink(source)
        return
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
    copy_new(source, target)
    if not same_content(source, target):
        os.unlink(target)
        raise OSError(f"the copy of {source} differs from it; original kept")
    os.unlink(source)


def _made_folder(dest: str, outcome: Outcome) -> bool:
    """Create ``dest``, or record in ``outcome`` why it cannot be made (a path under a read-only mount, a
    file of that name...): then nothing goes there, and the other file actions still run."""
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as exc:
        outcome.failed.append((dest, _reason(exc)))
        return False
    return True


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def inside(path: str, roots: Sequence[str]) -> bool:
    """Whether ``path`` is one of ``roots`` or below one (an album there would be scanned as photos)."""
    path = os.path.realpath(path)
    return any(is_within(path, os.path.realpath(root)) for root in roots)
