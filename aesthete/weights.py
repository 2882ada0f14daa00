"""Known weights: the project's ``weights.toml``, the user's own registry, downloads, verification and
removal.

A file counts as present only once its sha256 matches the registry: downloads stream into ``.part``
files, are hashed before an atomic rename, and a mismatch is deleted, never cached. Digests of files
already checked are remembered by (path, size, mtime, inode) in a small JSON file in the cache
directory, so ``list`` and ``score --weights FILE`` do not rehash hundreds of megabytes each time;
``verify`` always rehashes. One process at a time pulls or removes a name (a lock per name, in the
cache's ``locks`` folder, deleted by its holder as it finishes): a second is refused with ``WeightsBusy``.

Torch-free on purpose: scoring resolves its weights (and their id, part of the score cache key) on the
rescan path, which must not pay for ``import torch``. Checkpoint headers are read with
``aesthete.checkpoint.read_meta``; only ``add`` and ``verify`` import torch, to check that a
checkpoint's tensors are those of its architecture (``aesthete.checkpoint.check_checkpoint``).

A bad entry in the user's registry (edited by hand) is skipped with a one-line warning on stderr naming
the file and the entry, so the other entries, and commands that use none, keep working; ``add`` never
writes one: the new registry text is checked as reading checks it before it replaces the file (atomically).
``remove`` cuts one table out of that text and checks that exactly the other tables read back.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, BinaryIO, Literal

from aesthete.errors import AestheteError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from aesthete import fileops, paths
from aesthete.checkpoint import CheckpointError, read_meta

Kind = Literal["aesthetic", "backbone"]
Origin = Literal["project", "user"]
ProgressFn = Callable[[int, int | None], None]

DEFAULT_SIZE_CAP = 4 * 1024**3  # a download with no registered size may not exceed 4 GiB
CHUNK = 1024 * 1024
TIMEOUT_S = 60.0
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
HEX_RE = re.compile(r"[0-9a-f]+")

_FIELD_TYPES: dict[str, type] = {
    "kind": str,
    "arch": str,
    "backbone": str,
    "dataset": str,
    "bins": int,
    "url": str,
    "sha256": str,
    "sha256_prefix": str,
    "size": int,
    "license": str,
    "source": str,
    "metrics": dict,
    "policy": str,
    "path": str,
    "added": str,
    # Published checkpoints in their publisher's format (converted on the user's machine):
    "format": str,  # a recipe of aesthete.convert (pyiqa-topiq-iaa-res50, laion-aesthetic-head, ...)
    "requires": str,  # another entry whose file the conversion also reads (LAION's head needs CLIP)
    "output": str,  # "distribution" (default) or "score" (one number per photo, no bins)
    "like": str,  # user entries made by `add --like`: the project entry they follow
}
NONCOMMERCIAL_MARKERS = ("-NC", "NONCOMMERCIAL")
# What writing a download into the cache raises when the fault is this machine's, not the connection's:
# a full disk or quota, a file-size limit, a read-only or unwritable folder.
LOCAL_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


class WeightsError(AestheteError):
    """Weights that cannot be used, found or fetched; the message says why in one line."""


class UnknownWeights(WeightsError):
    """A name that no registry lists."""


class WeightsNotAvailable(WeightsError):
    """A registered name whose file is not (or no longer) present and verified."""


class ChecksumMismatch(WeightsError):
    """A file whose sha256 is not the registered one: refused, and not cached."""


class LicenseNotAccepted(WeightsError):
    """A non-commercial licence the user has not accepted: nothing was downloaded or converted."""


class WeightsBusy(WeightsError):
    """Weights that another aesthete process is pulling or removing at this moment."""


@dataclass(frozen=True)
class WeightsEntry:
    """One registered set of weights; ``path`` is where its verified file lives (or will, once pulled)."""

    name: str
    kind: Kind
    origin: Origin
    path: Path
    url: str | None = None
    sha256: str | None = None
    sha256_prefix: str | None = None
    arch: str | None = None
    backbone: str | None = None
    dataset: str | None = None
    bins: int | None = None
    size: int | None = None
    license: str | None = None
    source: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    policy: str | None = None
    added: str | None = None
    format: str | None = None
    requires: str | None = None
    output: str | None = None
    like: str | None = None
    available: bool = False

    @property
    def converted(self) -> bool:
        """A project entry whose URL is the publisher's file, converted into ``path`` when pulled."""
        return self.format is not None and self.origin == "project"

    @property
    def noncommercial(self) -> bool:
        """Whether the licence forbids commercial use, so pulling it needs explicit acceptance."""
        text = (self.license or "").upper()
        return any(marker in text for marker in NONCOMMERCIAL_MARKERS)

    def matches(self, digest: str) -> bool:
        """Whether a file with this sha256 is these weights (the full digest if known, else the prefix)."""
        if self.sha256:
            return digest == self.sha256
        return self.sha256_prefix is not None and digest.startswith(self.sha256_prefix)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


@dataclass(frozen=True)
class ResolvedWeights:
    """A verified aesthetic checkpoint ready to load: its file, display name, digest and header."""

    path: Path
    name: str
    sha256: str
    meta: dict[str, Any]

    @property
    def weights_id(self) -> str:
        """The id scores are cached under: the same bytes give the same id whatever the file is called."""
        return self.sha256[:16]


# --- registries --------------------------------------------------------------------------------------


def project_registry_path() -> Path:
    """The project's ``weights.toml``: packaged beside the code in an installed wheel, else at the root
    of the source checkout (editable installs and running from the repository)."""
    package_dir = Path(__file__).resolve().parent
    packaged = package_dir / "weights.toml"
    return packaged if packaged.is_file() else package_dir.parent / "weights.toml"


def list_weights() -> list[WeightsEntry]:
    """Every registered entry, project first then user, with ``available`` telling whether its file is
    present and matches its digest (checked lazily: a digest computed before is reused while the file's
    size and mtime are unchanged)."""
    return [replace(entry, available=_verified_digest(entry) is not None) for entry in _all_entries()]


def _all_entries() -> list[WeightsEntry]:
    registry = project_registry_path()
    if not registry.is_file():
        raise WeightsError(f"{registry}: the project's weights registry is missing (an installation problem)")
    project = _read_registry(registry, "project")
    user = _read_registry(paths.user_registry_path(create=False), "user", taken={entry.name for entry in project})
    return project + user


def _lookup(name: str) -> WeightsEntry:
    entries = _all_entries()
    for entry in entries:
        if entry.name == name:
            return entry
    raise _unknown(name, entries)


def _unknown(name: str, entries: list[WeightsEntry]) -> UnknownWeights:
    known = ", ".join(entry.name for entry in entries) or "none"
    return UnknownWeights(f"unknown weights {name!r} (known: {known}); see `aesthete weights list`")


def _read_registry(path: Path, origin: Origin, *, taken: Collection[str] = ()) -> list[WeightsEntry]:
    """The registry's entries. Every project entry must be valid (a bad one is an installation problem).
    A bad user entry, or one taking a name in ``taken`` (the project's), is skipped with a one-line
    warning naming the file and the entry, so one mistake there does not stop every command."""
    entries = []
    for name, table in _registry_tables(path).items():
        try:
            if name in taken:
                raise WeightsError(f"{path}: [weights.{name}] is also a project entry; rename it")
            entries.append(_parse_entry(path, origin, name, table))
        except WeightsError as exc:
            if origin == "project":
                raise
            _warn_once(f"{exc}; skipped until it is fixed or removed")
    return entries


def _registry_tables(path: Path) -> dict[str, Any]:
    """A registry file's ``[weights.NAME]`` tables, not yet checked (none when the file does not exist)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise WeightsError(f"{path}: unreadable weights registry ({exc})") from None
    tables = data.get("weights", {})
    if not isinstance(tables, dict) or set(data) - {"weights"}:
        raise WeightsError(f"{path}: a weights registry holds only [weights.NAME] tables")
    return tables


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """``aesthete: warning: MESSAGE`` on stderr, once per process however often the registry is read."""
    if message not in _warned:
        _warned.add(message)
        print(f"aesthete: warning: {message}", file=sys.stderr)


def _parse_entry(registry: Path, origin: Origin, name: str, table: Any) -> WeightsEntry:
    """Validate one table strictly, so a typo (``sha265``) is an error rather than an unchecked download."""

    def bad(reason: str) -> WeightsError:
        return WeightsError(f"{registry}: [weights.{name}] {reason}")

    if not isinstance(table, dict):
        raise bad("is not a table")
    if not NAME_RE.fullmatch(name):
        raise bad("has a name that is not letters, digits and ._+-")
    for key, value in table.items():
        expected = _FIELD_TYPES.get(key)
        if expected is None:
            raise bad(f"has an unknown field {key!r}")
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise bad(f"field {key!r} has the wrong type")
    kind = table.get("kind")
    if kind not in ("aesthetic", "backbone"):
        raise bad('needs kind = "aesthetic" or "backbone"')
    sha256, prefix = table.get("sha256"), table.get("sha256_prefix")
    if sha256 is not None and not (len(sha256) == 64 and HEX_RE.fullmatch(sha256)):
        raise bad("sha256 must be 64 lowercase hex digits")
    if prefix is not None and not (8 <= len(prefix) <= 64 and HEX_RE.fullmatch(prefix)):
        raise bad("sha256_prefix must be 8 to 64 lowercase hex digits")
    if not (sha256 or prefix):
        raise bad("needs sha256 (or sha256_prefix)")
    if table.get("output", "distribution") not in ("distribution", "score"):
        raise bad('output must be "distribution" or "score"')
    has_bins = bool(table.get("bins")) or table.get("output") == "score"
    if kind == "aesthetic" and "format" in table and origin == "project":
        # The digest is the publisher's file's (often only the torch.hub prefix); the converted
        # checkpoint is checked against the digest recorded when it was converted.
        if not (table.get("arch") and has_bins):
            raise bad('a converted aesthetic entry needs arch and bins (or output = "score")')
    elif kind == "aesthetic" and not (table.get("arch") and has_bins and sha256):
        raise bad("an aesthetic entry needs arch, bins and the full sha256")
    if kind == "backbone" and not table.get("backbone"):
        raise bad("a backbone entry needs backbone")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in table.get("metrics", {}).values()):
        raise bad("metrics must be numbers")
    if origin == "user":
        if not (table.get("path") and sha256):
            raise bad("a user entry needs path and sha256")
        location = Path(table["path"]).expanduser()
    else:
        if not table.get("url") or "path" in table:
            raise bad("a project entry needs url (and has no path: its file goes to the cache)")
        location = _download_path(name, kind, table["url"], sha256, converted="format" in table)
    fields = {key: value for key, value in table.items() if key not in ("kind", "path")}
    return WeightsEntry(name=name, kind=kind, origin=origin, path=location, **fields)


def _download_path(name: str, kind: Kind, url: str, sha256: str | None, *, converted: bool = False) -> Path:
    """Backbones keep the publisher's file name (torchvision's embeds the hash prefix); aesthetic
    checkpoints are named like added ones, by digest and name; converted ones by name (their digest is
    known only once converted)."""
    directory = paths.weights_cache_dir(create=False)
    if kind == "aesthetic" and converted:
        return directory / f"{name}.safetensors"
    if kind == "aesthetic":
        assert sha256 is not None, "validated by _parse_entry"
        return directory / f"{sha256[:16]}-{name}.safetensors"
    filename = _url_filename(url)
    if not filename:
        raise WeightsError(f"[weights.{name}] url {url!r} names no file")
    return directory / filename


def _url_filename(url: str) -> str:
    """The file name a URL ends with ("" when it names none)."""
    return Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name


def _publisher_download(entry: WeightsEntry) -> Path:
    """Where a converted entry's publisher file is downloaded to (as ``.part``) before it is converted."""
    assert entry.url is not None
    return paths.weights_cache_dir(create=False) / "downloads" / (_url_filename(entry.url) or entry.name)


# --- digests -----------------------------------------------------------------------------------------


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_cache_path(*, create: bool = False) -> Path:
    return paths.cache_dir(create=create) / "sha256-cache.json"


def _stat_key(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _load_hash_cache() -> dict[str, Any]:
    try:
        data = json.loads(_hash_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember_digest(path: Path, stat: os.stat_result, digest: str) -> None:
    """Record a digest; the cache is an optimisation, so failing to write it is not an error."""
    cache = {key: value for key, value in _load_hash_cache().items() if os.path.exists(key)}
    cache[str(path)] = {"stat": _stat_key(stat), "sha256": digest}
    with contextlib.suppress(OSError):
        fileops.atomic_write_text(_hash_cache_path(create=True), json.dumps(cache, indent=0, sort_keys=True))


def file_sha256(path: str | Path, *, recheck: bool = False) -> str:
    """sha256 of a file, reusing the digest remembered for it while its size, mtime and inode are unchanged."""
    path = Path(path).resolve()
    stat = path.stat()
    remembered = _load_hash_cache().get(str(path))
    if not recheck and isinstance(remembered, dict) and remembered.get("stat") == _stat_key(stat):
        return str(remembered["sha256"])
    digest = _hash_file(path)
    _remember_digest(path, stat, digest)
    return digest


def _verified_digest(entry: WeightsEntry, *, recheck: bool = False) -> str | None:
    """The digest of the entry's file if it is present and is the registered file, else None.

    A converted entry's file is the checkpoint made from the publisher's file: it must match the digest
    recorded beside it at conversion, and its header must name the publisher file's digest.
    """
    try:
        digest = file_sha256(entry.path, recheck=recheck)
    except OSError:
        return None
    if not entry.converted:
        return digest if entry.matches(digest) else None
    try:
        recorded = _digest_record(entry.path).read_text(encoding="utf-8").strip()
        source_digest = read_meta(entry.path).get("converted_from", {}).get("sha256", "")
    except (OSError, CheckpointError, AttributeError):
        return None
    return digest if digest == recorded and entry.matches(source_digest) else None


def _digest_record(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


# --- resolving ---------------------------------------------------------------------------------------


def resolve_weights(spec: str, *, arch: str | None = None) -> ResolvedWeights:
    """Aesthetic weights by registered NAME or checkpoint PATH (a name wins; write ``./NAME`` for a file).

    ``arch``, when given, must be the checkpoint's architecture. Raises ``UnknownWeights``,
    ``WeightsNotAvailable``, ``WeightsError``, or ``CheckpointError`` for a file that is not an aesthete
    checkpoint.
    """
    entries = _all_entries()
    entry = next((e for e in entries if e.name == spec), None)
    if entry is not None:
        return _resolve_entry(entry, arch)
    path = Path(spec).expanduser()
    if not path.is_file():
        if path.exists():
            raise WeightsError(f"{spec}: not a checkpoint file")
        if "/" in spec or os.sep in spec or path.suffix in (".safetensors", ".pth", ".pt"):
            raise WeightsError(f"{spec}: no such file")
        known = ", ".join(e.name for e in entries if e.kind == "aesthetic") or "none yet"
        raise UnknownWeights(
            f"unknown weights {spec!r} (aesthetic weights known: {known}); see `aesthete weights list`"
        )
    meta = read_meta(path)
    if arch and meta["arch"] != arch:
        raise WeightsError(f"{spec}: a {meta['arch']} checkpoint, not {arch}")
    digest = file_sha256(path)
    registered = next((e.name for e in entries if e.kind == "aesthetic" and e.matches(digest)), None)
    return ResolvedWeights(path=path.resolve(), name=registered or path.name, sha256=digest, meta=meta)


def resolve_backbone(name: str) -> tuple[WeightsEntry, str] | None:
    """(the entry, its file's sha256) when ``name`` is a registered ImageNet backbone (``kind =
    "backbone"``), for ``score``'s embed-only runs (:mod:`aesthete.embed_only`); None for any other name.
    Raises ``WeightsNotAvailable`` when its file is not pulled."""
    entry = next((e for e in _all_entries() if e.name == name and e.kind == "backbone"), None)
    if entry is None:
        return None
    digest = _verified_digest(entry)
    if digest is None:
        raise WeightsNotAvailable(f"weights {name!r} are not downloaded: run `aesthete weights pull {name}`")
    return entry, digest


def _resolve_entry(entry: WeightsEntry, arch: str | None) -> ResolvedWeights:
    if entry.kind != "aesthetic":
        raise WeightsError(f"{entry.name!r} are ImageNet {entry.backbone} weights for training, not for scoring")
    if arch and entry.arch != arch:
        raise WeightsError(f"weights {entry.name!r} are for model {entry.arch!r}, not {arch!r}")
    digest = _verified_digest(entry)
    if digest is None:
        raise WeightsNotAvailable(_not_available_message(entry))
    return ResolvedWeights(path=entry.path, name=entry.name, sha256=digest, meta=read_meta(entry.path))


def _not_available_message(entry: WeightsEntry) -> str:
    ways = (
        f"`aesthete weights add FILE --name N` to register a local checkpoint, "
        f"or `aesthete train {entry.arch} ...` to train one"
    )
    if entry.origin == "user":
        return f"weights {entry.name!r}: {entry.path} is missing or changed; use {ways}"
    return f"weights {entry.name!r} are not downloaded: run `aesthete weights pull {entry.name}`, or use {ways}"


def default_weights_for(arch: str) -> ResolvedWeights | None:
    """The weights ``score`` uses when none are named: the first available aesthetic entry for ``arch``,
    user entries (in the order they were added) before project ones. None when there are none."""
    entries = _all_entries()
    ordered = [e for e in entries if e.origin == "user"] + [e for e in entries if e.origin == "project"]
    for entry in ordered:
        if entry.kind == "aesthetic" and entry.arch == arch and _verified_digest(entry):
            return _resolve_entry(entry, arch)
    return None


def weights_label(weights_id: str) -> str:
    """How tables and JSON name the weights cached under ``weights_id``: their registry name when some
    registered entry has those bytes (aesthetic weights, or an ImageNet backbone's embed-only run), the
    name of the personal head whose digest it is, else the id itself (a checkpoint never registered)."""
    for entry in _all_entries():
        # A converted checkpoint's local digest differs from the listed download's: check both.
        for digest in (entry.sha256, _verified_digest(entry) if entry.path.is_file() else None):
            if digest and digest[: len(weights_id)] == weights_id:
                return entry.name
    from aesthete.learning import head_name  # personal heads share the weights' namespace (`learn --name`)

    return head_name(weights_id) or weights_id


def ava_srcc(entry: WeightsEntry, entries: list[WeightsEntry] | None = None) -> float | None:
    """The publisher's AVA test SRCC recorded for ``entry`` (an entry made by ``add --like`` takes its
    model's), or None when none is recorded."""
    metrics = entry.metrics
    if not metrics and entry.like:
        base = next((e for e in (entries if entries is not None else _all_entries()) if e.name == entry.like), None)
        metrics = base.metrics if base is not None else {}
    value = metrics.get("srcc") if entry.dataset in (None, "ava") or entry.like else None
    return float(value) if value is not None else None


def _by_srcc(entries: list[WeightsEntry]) -> list[WeightsEntry]:
    """Aesthetic entries that score photos, best recorded AVA SRCC first; those with none recorded after
    them, the user's own before the project's, each in registry order (the sort is stable)."""
    from aesthete.architectures import ARCHITECTURES

    usable = [
        e for e in entries if e.kind == "aesthetic" and e.arch in ARCHITECTURES and ARCHITECTURES[e.arch].scores_photos
    ]

    def key(entry: WeightsEntry) -> tuple[float, int]:
        srcc = ava_srcc(entry, entries)
        return (-srcc if srcc is not None else float("inf"), 0 if entry.origin == "user" else 1)

    return sorted(usable, key=key)


def best_available() -> ResolvedWeights | None:
    """The weights ``score`` uses when given neither a model nor weights: of the aesthetic checkpoints
    present and verified, the one whose publisher reports the best AVA SRCC (see :func:`_by_srcc`).
    None when the user has none."""
    entries = _all_entries()
    for entry in _by_srcc(entries):
        if _verified_digest(entry):
            return _resolve_entry(entry, None)
    return None


def recommended() -> tuple[WeightsEntry | None, WeightsEntry | None]:
    """(the project's checkpoint with the best published AVA SRCC, the best one under a permissive
    licence): what a user with no weights is told to pull. The permissive one may be the same entry."""
    entries = _all_entries()
    project = [e for e in _by_srcc(entries) if e.origin == "project" and e.url]
    by_name = {e.name: e for e in entries}

    def permissive(entry: WeightsEntry) -> bool:
        required = by_name.get(entry.requires) if entry.requires else None
        return not entry.noncommercial and not (required is not None and required.noncommercial)

    best = project[0] if project else None
    free = next((e for e in project if permissive(e)), None)
    return best, free


def download_size(entry: WeightsEntry) -> int | None:
    """Bytes ``pull`` fetches for ``entry`` (with the file it requires), or None if any part is unknown."""
    sizes = [entry.size]
    if entry.requires:
        sizes.append(next((e.size for e in _all_entries() if e.name == entry.requires), None))
    return None if any(size is None for size in sizes) else sum(sizes)  # type: ignore[arg-type]


def human_size(size: int | None) -> str:
    """``3.7 MB`` (decimal units, as download tools show them), or ``-`` when not known."""
    if size is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def backbone_weights_path(backbone: str) -> Path | None:
    """The pulled, verified ImageNet file for a torchvision backbone (training's initialisation), if any."""
    for entry in _all_entries():
        if entry.kind == "backbone" and entry.backbone == backbone and _verified_digest(entry):
            return entry.path
    return None


def verify(name: str | None = None) -> list[tuple[str, bool, str]]:
    """Rehash cached files: (name, ok, reason) for the named entry, or for every entry with a file to
    check (user entries always: theirs is the only copy; project entries once pulled). An aesthetic
    checkpoint with the registered digest must also be usable (:func:`aesthete.checkpoint.check_checkpoint`:
    not truncated, a known architecture, tensors that fit it), else it fails with the reason."""
    entries = [_lookup(name)] if name else _all_entries()
    results = []
    for entry in entries:
        if not entry.path.is_file():
            if entry.origin == "user":
                results.append((entry.name, False, f"{entry.path} is missing"))
            elif name:
                results.append((entry.name, False, "not downloaded"))
            continue
        if not _verified_digest(entry, recheck=True):
            results.append((entry.name, False, "sha256 mismatch"))
            continue
        problem = _unusable(entry.path) if entry.kind == "aesthetic" else None
        results.append(
            (entry.name, False, f"sha256 ok, not usable: {problem}") if problem else (entry.name, True, "sha256 ok")
        )
    return results


def _unusable(path: Path) -> str | None:
    """Why the checkpoint at ``path`` cannot be loaded, or None when it can (imports torch)."""
    from aesthete.checkpoint import check_checkpoint

    try:
        check_checkpoint(path)
    except CheckpointError as exc:
        return str(exc)
    return None


# --- removing ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Removal:
    """What :func:`remove` did. ``kind``: ``download`` (a project entry's downloaded files deleted; the
    entry stays, pullable), ``registered`` (a user entry unregistered, the copy aesthete made deleted) or
    ``personal`` (a head made by ``aesthete learn`` deleted). ``deleted`` lists the files deleted (none
    when a project entry was not downloaded), ``freed`` their bytes; ``kept`` is a registered file that
    aesthete did not make (outside its cache), left where it is; ``heads`` the personal heads learned on
    these weights, which ``score --weights HEAD`` cannot run until the weights are back. A dry run's
    ``deleted`` and ``freed`` are what the removal would delete."""

    name: str
    kind: Literal["download", "registered", "personal"]
    deleted: list[str]
    freed: int
    kept: str | None = None
    heads: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def remove(name: str, *, dry_run: bool = False) -> Removal:
    """Remove the weights called ``name``, freeing the disk they take (with ``dry_run``: what it would do).

    A project entry (``weights.toml``): its downloaded file is deleted, with a partial download and, for a
    converted checkpoint, its digest record; the entry stays listed and ``pull`` fetches it again. A user
    entry (``add``, ``add --like``, or a table written by hand, even one skipped as unusable): its table
    leaves the user's registry (what else is written there is kept) and its file is deleted if it is the
    copy aesthete made in its cache; the file it was added from is never touched. A personal head: its
    file is deleted. Scores made with the weights stay in the database (keyed by the file's digest: the
    same file pulled or added again finds them). Raises ``UnknownWeights``; ``WeightsBusy`` while a
    ``pull`` of the name runs; ``WeightsError`` when a file cannot be deleted or the registry rewritten.
    """
    from aesthete.learning import head_path, list_heads

    entries = _all_entries()
    entry = next((e for e in entries if e.name == name), None)
    registry = paths.user_registry_path(create=False)
    heads = [head["name"] for head in list_heads() if head.get("base_weights") == name]
    if entry is not None and entry.origin == "project":
        files = [entry.path, entry.path.with_name(entry.path.name + ".part")]
        if entry.converted:
            download = _publisher_download(entry)
            files += [_digest_record(entry.path), download.with_name(download.name + ".part")]
        if dry_run:
            return Removal(name, "download", *_existing(files), heads=heads)
        try:
            with _exclusive(name):
                deleted, freed = _delete(files)
        except OSError as exc:
            raise WeightsError(f"cannot remove weights {name!r} ({_reason(exc)})") from None
        return Removal(name, "download", deleted, freed, heads=heads)
    tables = _registry_tables(registry)
    if name in tables:  # a user entry, usable or skipped
        table = tables[name]
        recorded = table.get("path") if isinstance(table, dict) else None
        location = Path(recorded).expanduser() if isinstance(recorded, str) else None
        others = {e.path.resolve() for e in entries if e.name != name}
        copy = location is not None and _in_cache(location) and location.resolve() not in others
        kept = str(location) if location is not None and not copy and location.exists() else None
        try:  # cut before anything is deleted: a registry that cannot be cut safely removes nothing
            text = _registry_without(registry, name)
        except OSError as exc:
            raise WeightsError(f"cannot rewrite {registry} ({_reason(exc)}); nothing was removed") from None
        if dry_run:
            return Removal(name, "registered", *_existing([location] if copy else []), kept=kept, heads=heads)
        try:
            fileops.atomic_write_text(registry, text)
        except OSError as exc:
            raise WeightsError(f"cannot rewrite {registry} ({_reason(exc)}); nothing was removed") from None
        deleted, freed = _delete([location]) if copy and location is not None else ([], 0)
        return Removal(name, "registered", deleted, freed, kept=kept, heads=heads)
    head = head_path(name)
    if head is None:
        raise _unknown(name, entries)
    return Removal(name, "personal", *(_existing([head]) if dry_run else _delete([head])))


def _existing(files: list[Path]) -> tuple[list[str], int]:
    """Those of ``files`` that exist and their bytes, as :func:`_delete` would report them."""
    present = [path for path in files if path.is_file()]
    return [str(path) for path in present], sum(path.stat().st_size for path in present)


def _in_cache(path: Path) -> bool:
    """Whether ``path`` is in aesthete's weights cache, where ``add`` puts the copies it makes."""
    return path.resolve().parent == paths.weights_cache_dir(create=False).resolve()


def _delete(files: list[Path]) -> tuple[list[str], int]:
    """Delete those of ``files`` that exist; returns (the paths deleted, their bytes)."""
    deleted, freed = [], 0
    for path in files:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise WeightsError(f"cannot delete {path} ({_reason(exc)})") from None
        deleted.append(str(path))
        freed += size
    return deleted, freed


_HEADER = re.compile(r"\s*\[{1,2}(?P<key>[^\]]*)\]{1,2}\s*(?:#.*)?")  # [table] or [[array of tables]]
_KEY_PART = re.compile(r"""\s*(?:"(?P<basic>[^"\\]*)"|'(?P<literal>[^']*)'|(?P<bare>[A-Za-z0-9_-]+))\s*""")


def _header_key(line: str) -> tuple[str, ...] | None:
    """The key of a TOML table header line (``[weights."mine"]`` -> ("weights", "mine")); () for a
    header that is not a plain dotted key; None for a line that is not a header."""
    match = _HEADER.fullmatch(line.rstrip("\r\n"))
    if match is None:
        return None
    key, parts, position = match["key"], [], 0
    while (part := _KEY_PART.match(key, position)) is not None:
        parts.append(next(value for value in part.group("basic", "literal", "bare") if value is not None))
        position = part.end()
        if position == len(key):
            return tuple(parts)
        if key[position] != ".":
            break
        position += 1
    return ()


def _registry_without(registry: Path, name: str) -> str:
    """The user's registry text without the table of ``name`` (and its sub-tables), everything else as
    written; checked to read back as exactly the other tables, else ``WeightsError`` (remove it by hand)."""
    text = registry.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = end = None
    for index, line in enumerate(lines):
        key = _header_key(line)
        if key is None:
            continue
        ours = key[:2] == ("weights", name)
        if start is None and ours:
            start = index
        elif start is not None and not ours:
            end = index
            break
    if start is not None:
        if end is None:  # the last table: the blank lines `add` wrote before it go too
            end = len(lines)
            while start > 0 and not lines[start - 1].strip():
                start -= 1
        kept = "".join(lines[:start] + lines[end:])
        wanted = {key: value for key, value in tomllib.loads(text)["weights"].items() if key != name}
        with contextlib.suppress(tomllib.TOMLDecodeError):
            after = tomllib.loads(kept)
            if set(after) <= {"weights"} and after.get("weights", {}) == wanted:
                return kept
    raise WeightsError(f"{registry}: cannot take [weights.{name}] out of it safely; remove that table by hand")


# --- adding ------------------------------------------------------------------------------------------


def add(file: str | Path, *, name: str) -> WeightsEntry:
    """Register a local aesthete checkpoint under ``name`` in the user's registry.

    The file is copied (and hashed in the same pass) into the weights cache, so later moving or deleting
    the original does not break it. Adding the same bytes under the same name again is a no-op; a name
    already used for other weights, or by a personal head, is refused. The file must be usable before
    anything is written: an aesthete checkpoint (pickles included are never read) whose description is
    complete, whose tensors fill the file (not truncated) and are exactly those of the architecture it
    names (:func:`aesthete.checkpoint.check_checkpoint`, which imports torch); else ``CheckpointError``.
    """
    from aesthete.checkpoint import check_checkpoint  # torch: only adding pays for it
    from aesthete.input_policy import InputPolicy

    entries = _all_entries()
    existing = next((e for e in entries if e.name == name), None)
    _check_new_name(name, entries)
    source = Path(file).expanduser()
    check_checkpoint(source)  # before hundreds of megabytes are copied; errors name the user's file
    directory = paths.weights_cache_dir()
    # The copy's final name holds its digest, known only once it is copied: stage it in the cache folder.
    with fileops.staged(directory / f"add-{name}.safetensors") as (fd, tmp_name):
        tmp_path = Path(tmp_name)
        with os.fdopen(os.dup(fd), "wb") as tmp, source.open("rb") as handle:
            digest = _copy_hashing(handle, tmp)
        if existing is not None and existing.sha256 != digest:
            raise WeightsError(
                f"{name!r} already names other weights (sha256 {(existing.sha256 or '')[:16]}); "
                f"choose another --name or remove it from {paths.user_registry_path(create=False)}"
            )
        if existing is not None and _verified_digest(existing):
            return replace(existing, available=True)
        meta = check_checkpoint(tmp_path)  # the copy, not only the original, must be usable
        dest = existing.path if existing is not None else directory / f"{digest[:16]}-{name}.safetensors"
        record = {
            "kind": "aesthetic",
            "arch": meta["arch"],
            "backbone": meta["config"].get("backbone"),
            "dataset": meta.get("dataset"),
            "bins": meta["bins"],
            "policy": InputPolicy.from_dict(meta["policy"]).key,
            "sha256": digest,
            "path": str(dest.resolve()),
            "source": _printable(str(source.resolve())),
            "added": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        # None: the entry is registered already, its missing file is being restored.
        registry_text = _registry_with(name, record) if existing is None else None  # checked before any write
        dest.parent.mkdir(parents=True, exist_ok=True)
        _install(tmp_path, dest, digest, registry_text)
    return replace(_lookup(name), available=True)


def _install(staged: Path, dest: Path, digest: str, registry_text: str | None) -> None:
    """Give an added checkpoint's staged copy its name ``dest`` in the cache, then write the user's
    registry as ``registry_text`` (None: leave it, the entry is registered already). Both happen or
    neither: whatever stops it midway, Ctrl-C included, deletes the copy it put there and writes the
    registry back, so no copy is left that no entry names (``remove`` could never delete it)."""
    registry = paths.user_registry_path()
    try:
        before: str | None = registry.read_text(encoding="utf-8")
    except FileNotFoundError:
        before = None
    made = not dest.exists()  # a file already there (the same digest and name) is not ours to delete
    try:
        fileops.publish(staged, dest, overwrite=True)
        _remember_digest(dest.resolve(), dest.stat(), digest)
        if registry_text is not None:
            fileops.atomic_write_text(registry, registry_text)
    except BaseException:
        with contextlib.suppress(OSError):  # the registry first: never an entry whose file is gone
            if registry_text is not None and registry.read_text(encoding="utf-8") == registry_text:
                if before is None:
                    registry.unlink()
                else:
                    fileops.atomic_write_text(registry, before)
        if made:
            with contextlib.suppress(OSError):
                dest.unlink(missing_ok=True)
        raise


def _check_new_name(name: str, entries: list[WeightsEntry]) -> None:
    """Refuse a name ``add`` may not give: not letters, digits and ._+-; a project entry's; a personal
    head's (``--weights NAME`` means both, and ``learn`` refuses the names listed here); or one of a user
    entry that is skipped as unusable (another table of that name would make the registry unreadable)."""
    from aesthete.learning import head_path  # numpy: only adding pays for it

    if not NAME_RE.fullmatch(name):
        raise WeightsError(f"{name!r}: a weights name is letters, digits and ._+- (at most 100 characters)")
    if any(entry.name == name and entry.origin == "project" for entry in entries):
        raise WeightsError(f"{name!r} is a project entry (weights.toml); choose another --name")
    if head_path(name) is not None:
        raise WeightsError(f"{name!r} already names a personal head (`aesthete learn`); choose another --name")
    registry = paths.user_registry_path(create=False)
    if name in _registry_tables(registry) and not any(entry.name == name for entry in entries):
        raise WeightsError(f"{registry}: [weights.{name}] is unusable; fix or remove it, or choose another --name")


def _copy_hashing(source: BinaryIO, dest: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        dest.write(chunk)
    dest.flush()
    return digest.hexdigest()


def _registry_with(name: str, fields: dict[str, str | int | None]) -> str:
    """The user's registry with a table for ``name`` appended (what the user wrote there by hand kept),
    checked as reading checks it: ``WeightsError`` when it would not read back, before anything is
    written. Fields that are None are left out. The caller writes it (atomically) once its file is in place."""
    registry = paths.user_registry_path(create=False)
    try:
        text = registry.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = "# Weights registered with `aesthete weights add`; edit freely (add appends, remove cuts a table).\n"
    lines = [f'\n[weights."{name}"]'] + [
        f"{key} = {_toml_value(value)}" for key, value in fields.items() if value is not None
    ]
    text = text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    try:
        table = tomllib.loads(text)["weights"][name]
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise WeightsError(f"{registry}: cannot add [weights.{name}] ({exc})") from None
    _parse_entry(registry, "user", name, table)
    return text


def _toml_value(value: str | int) -> str:
    if isinstance(value, int):
        return str(value)
    out = []
    for char in value:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        elif 0xD800 <= code <= 0xDFFF:
            raise WeightsError(f"{value!r}: not valid Unicode, cannot be recorded in the registry")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _printable(text: str) -> str:
    """A path as valid Unicode (file names that are not UTF-8 get U+FFFD), so it can go into TOML."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


# --- downloading -------------------------------------------------------------------------------------


def pull(name: str, *, progress: ProgressFn | None = None, accept_license: bool = False) -> Path:
    """Download a registered entry into the cache and return its verified file.

    Supported URLs: ``https://``; ``file://`` (local copies); ``http://`` only to a loopback host (a
    mirror or test server on this machine), since plain HTTP elsewhere could be tampered with. An
    interrupted download leaves ``<file>.part``, resumed with a Range request next time (from zero if
    the server does not honour it). The sha256 is checked before the file takes its final name; a
    mismatch deletes it and raises ``ChecksumMismatch``. ``progress(done, total)`` gets byte counts.

    An entry with a ``format`` is a publisher's file: it is converted into an aesthete checkpoint (see
    ``_pull_converted``). A non-commercial licence needs ``accept_license``, whatever the entry's format
    (else ``LicenseNotAccepted``, before any byte is fetched).
    """
    entry = _lookup(name)
    if entry.url is None:
        raise WeightsError(f"{name!r} is a local checkpoint (added from {entry.source}); there is nothing to pull")
    if _verified_digest(entry):
        return entry.path
    if entry.noncommercial and not accept_license:
        raise LicenseNotAccepted(
            f"{license_notice(entry)} is non-commercial: accept it with --accept-license; nothing was downloaded"
        )
    try:
        with _exclusive(name):
            if _verified_digest(entry):  # pulled by the process that held the lock a moment ago
                return entry.path
            if entry.converted:
                return _pull_converted(entry, progress, accept_license)
            return _pull_file(entry, progress)
    except OSError as exc:  # the cache folder cannot be made or written (not the download's fault)
        raise WeightsError(
            f"cannot write weights {name!r} into {paths.weights_cache_dir(create=False)} ({_reason(exc)})"
        ) from None


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or exc.__class__.__name__


@contextlib.contextmanager
def _exclusive(name: str) -> Iterator[None]:
    """Hold ``name``'s lock (a file in the cache's ``locks`` folder) while its files are pulled or removed,
    so that two processes never write one ``.part`` or delete a file being made: a second one raises
    ``WeightsBusy``. The lock goes with the process, however it ends (an flock, not a marker file).

    The holder deletes the lock file as it finishes, still holding it, so ``locks`` does not fill with one
    empty file per name ever pulled. That is safe only with the check after locking: a process that opened
    the file just before it was deleted locks a file no longer under the name (while a third may lock a new
    one), so it sees the name's file is not its own and starts again with the file now there."""
    path = paths.cache_dir() / "locks" / f"{name}.lock"
    path.parent.mkdir(exist_ok=True)
    while True:
        with open(path, "a+b") as handle:
            if not _try_lock(handle.fileno()):
                raise WeightsBusy(
                    f"weights {name!r} are being pulled or removed by another aesthete; run again when it has finished"
                )
            if not _still_named(handle.fileno(), path):
                continue  # its holder deleted it as it finished: lock the file under the name now
            try:
                yield
            finally:
                # Windows cannot delete a file open here (so no one can lock a deleted file there): kept.
                if sys.platform != "win32":
                    with contextlib.suppress(OSError):  # a file left behind is only clutter, as before
                        path.unlink(missing_ok=True)
            return  # closing the file releases the lock


def _still_named(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the open file ``fd`` (not deleted, nor replaced by a newer file)."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _try_lock(fd: int) -> bool:
    """Lock ``fd``'s file without waiting; False when another open file holds its lock."""
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, errno.EDEADLK):
            return False
        raise
    return True


def _pull_file(entry: WeightsEntry, progress: ProgressFn | None) -> Path:
    """Download an entry whose file is used as published (a backbone, an aesthete checkpoint)."""
    name = entry.name
    paths.weights_cache_dir()
    part, digest = _download_verified(entry, entry.path, progress)
    if entry.kind == "aesthetic":
        meta = _checked_meta(part, entry)
        if meta["arch"] != entry.arch or meta["bins"] != entry.bins:
            part.unlink(missing_ok=True)
            raise WeightsError(f"{name!r}: the file is a {meta['arch']} checkpoint, the registry says {entry.arch}")
    fileops.publish(part, entry.path, overwrite=True)
    _remember_digest(entry.path.resolve(), entry.path.stat(), digest)
    return entry.path


def _download_verified(entry: WeightsEntry, dest: Path, progress: ProgressFn | None) -> tuple[Path, str]:
    """Download ``entry.url`` into ``dest.part`` and check its sha256; returns (part, digest)."""
    name = entry.name
    assert entry.url is not None
    # urllib.request, http.client and ssl cost ~50 ms to import: only a download needs them.
    import http.client
    import urllib.error

    part = dest.with_name(dest.name + ".part")
    cap = entry.size + entry.size // 10 if entry.size else DEFAULT_SIZE_CAP
    try:
        _download(entry.url, part, cap, progress, size=entry.size)
        digest = _hash_file(part)
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"download of {name!r} failed: {entry.url} answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise WeightsError(f"download of {name!r} failed: cannot reach {entry.url} ({exc.reason})") from None
    except (OSError, http.client.HTTPException) as exc:
        if isinstance(exc, OSError) and exc.errno in LOCAL_WRITE_ERRORS:  # this machine's fault: say so
            kept = part.stat().st_size if part.exists() else 0
            raise WeightsError(
                f"download of {name!r} stopped: cannot write {part} ({_reason(exc)}); free space or make the "
                f"folder writable, then run `aesthete weights pull {name}` again"
                + (f" (the {human_size(kept)} downloaded are kept and resumed)" if kept else "")
            ) from None
        reason = str(exc) or exc.__class__.__name__
        raise WeightsError(
            f"download of {name!r} interrupted ({reason}); run `aesthete weights pull {name}` again to resume"
        ) from None
    if not entry.matches(digest):
        part.unlink(missing_ok=True)
        expected = entry.sha256 or f"{entry.sha256_prefix}..."
        raise ChecksumMismatch(
            f"download of {name!r} refused: sha256 {digest} is not the registered {expected}; nothing was cached"
        )
    return part, digest


def license_notice(entry: WeightsEntry) -> str:
    """One line: the entry's licence and where it comes from, for the acceptance prompt."""
    return f"{entry.name}: licence {entry.license or 'not stated'} (source: {entry.source or entry.url})"


def _pull_converted(entry: WeightsEntry, progress: ProgressFn | None, accept_license: bool) -> Path:
    """Download the publisher's file (and the file it requires), verify each sha256 BEFORE anything
    reads it, convert into an aesthete checkpoint at ``entry.path``, then delete the publisher's file.
    The licence was accepted by ``pull``'s caller (``accept_license`` goes on to the required file).
    A conversion interrupted (Ctrl-C) keeps the verified download, so the next pull only converts it."""
    files: dict[str, Path] = {}
    if entry.requires:
        files["clip"] = pull(entry.requires, progress=progress, accept_license=accept_license)
    download = _publisher_download(entry)
    download.parent.mkdir(parents=True, exist_ok=True)
    part, digest = _download_verified(entry, download, progress)
    files["main"] = part
    try:
        _convert_into(entry, files, entry.path, digest)
    except Exception:
        part.unlink(missing_ok=True)  # a published file that does not convert is not kept
        raise
    part.unlink(missing_ok=True)  # the publisher's file is not kept: the checkpoint replaces it
    return entry.path


def _convert_into(entry: WeightsEntry, files: dict[str, Path], dest: Path, digest: str) -> str:
    """Convert verified publisher files into ``dest`` (atomically) and record its digest; returns it."""
    from aesthete import convert  # torch: only a conversion pays for it

    assert entry.format is not None
    provenance = {
        "entry": entry.name,
        "sha256": digest,
        "url": entry.url,
        "license": entry.license,
        "source": entry.source,
        "dataset": entry.dataset,
    }
    tmp = dest.with_name(dest.name + ".converting")
    try:
        convert.convert(entry.format, files, tmp, provenance=provenance)
        meta = read_meta(tmp)
        if meta["arch"] != entry.arch:
            raise WeightsError(f"{entry.name!r}: converts to {meta['arch']}, the registry says {entry.arch}")
        converted = _hash_file(tmp)
        fileops.publish(tmp, dest, overwrite=True)
    finally:
        tmp.unlink(missing_ok=True)
    fileops.atomic_write_text(_digest_record(dest), converted + "\n")
    _remember_digest(dest.resolve(), dest.stat(), converted)
    return converted


def _checked_meta(part: Path, entry: WeightsEntry) -> dict[str, Any]:
    try:
        return read_meta(part)
    except CheckpointError:
        part.unlink(missing_ok=True)
        raise WeightsError(f"{entry.name!r}: the downloaded file is not an aesthete checkpoint") from None


def _check_url(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or parts.scheme == "file":
        return parts
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return parts
    raise WeightsError(f"{url}: refused; weights download over https (or file://, or http from this machine)")


def _checked_redirects() -> urllib.request.HTTPRedirectHandler:
    """A redirect handler that follows redirects only to URLs that would be accepted directly (no https ->
    http downgrade). Made here rather than at import: urllib.request is imported by downloads alone."""
    import urllib.request

    class CheckedRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(
            self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Any, newurl: str
        ) -> urllib.request.Request | None:
            _check_url(newurl)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return CheckedRedirects()


def _download(url: str, part: Path, cap: int, progress: ProgressFn | None, *, size: int | None = None) -> None:
    """Fetch ``url`` into ``part``, resuming it. ``size`` (the registry's) is the length expected where the
    server states none, so that a connection closed early counts as a cut, not as a whole (wrong) file."""
    import urllib.error
    import urllib.request

    parts = _check_url(url)
    offset = part.stat().st_size if part.exists() else 0
    if parts.scheme == "file":
        local = urllib.request.url2pathname(parts.path)
        try:
            source = open(local, "rb")  # noqa: SIM115 - closed by the with below; open errors are the URL's fault
        except OSError as exc:
            raise WeightsError(f"{url}: cannot read {local} ({exc.strerror or exc})") from None
        with source:
            total = os.fstat(source.fileno()).st_size
            offset = offset if offset <= total else 0
            source.seek(offset)
            _stream(source, part, offset, total, cap, progress)
        return
    handlers: list[urllib.request.BaseHandler] = [_checked_redirects()]
    if parts.hostname in LOOPBACK_HOSTS:
        handlers.append(urllib.request.ProxyHandler({}))  # a loopback address never goes through a proxy
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"User-Agent": "aesthete"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = opener.open(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not offset:  # 416: the .part may already be whole; its hash decides
            raise
        return
    with response:
        length = response.headers.get("Content-Length")
        if response.status == 206:
            if _range_start(response.headers.get("Content-Range")) != offset:
                part.unlink(missing_ok=True)
                raise ConnectionError("the server sent another range than asked; the next pull starts afresh")
            total = offset + int(length) if length else size
        else:  # 200: the whole file, so the .part starts again from zero
            offset, total = 0, int(length) if length else size
        _stream(response, part, offset, total, cap, progress)


def _range_start(content_range: str | None) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (content_range or "").strip())
    return int(match.group(1)) if match else None


def _stream(
    source: BinaryIO, part: Path, offset: int, total: int | None, cap: int, progress: ProgressFn | None
) -> None:
    """Append ``source`` to ``part`` from ``offset`` (0 truncates), refusing to grow past ``cap``."""
    if total is not None and total > cap:
        part.unlink(missing_ok=True)
        raise WeightsError(f"download refused: {total} bytes is more than the {cap} the registry allows")
    done = offset
    with part.open("r+b" if offset else "wb") as out:
        out.seek(offset)
        out.truncate()
        if progress:
            progress(done, total)
        while chunk := source.read(CHUNK):
            done += len(chunk)
            if done > cap:
                out.close()
                part.unlink(missing_ok=True)
                raise WeightsError(f"download refused: more than the {cap} bytes the registry allows")
            out.write(chunk)
            if progress:
                progress(done, total)
        out.flush()
        os.fsync(out.fileno())
    if total is not None and done < total:
        raise ConnectionError(f"connection closed after {done} of {total} bytes")


# --- adding a publisher-format file ------------------------------------------------------------------


def add_like(
    files: list[str | Path],
    *,
    name: str,
    like: str,
    accept_license: bool = False,
    other_weights: bool = False,
) -> WeightsEntry:
    """Convert publisher-format file(s) fetched by hand, following project entry ``like`` (its format,
    architecture, preprocessing and licence), and register the result under ``name``.

    Each file's sha256 is compared with the entry's (and, for LAION's head, the CLIP entry it requires)
    before anything reads it; a file that is not the published one is refused unless ``other_weights``
    (then it is still read only with ``weights_only=True`` / the allowlisted TorchScript reader). A part
    not given (the CLIP archive) is taken from the cache once pulled.
    """
    from aesthete.input_policy import InputPolicy

    entries = _all_entries()
    _check_new_name(name, entries)
    base = _lookup(like)
    if not base.converted:
        raise WeightsError(f"--like {like!r}: not a published checkpoint in a publisher's format")
    if any(entry.name == name for entry in entries):
        raise WeightsError(f"{name!r} is already a weights name; choose another --name")
    if base.noncommercial and not accept_license:
        raise LicenseNotAccepted(
            f"{license_notice(base)} is non-commercial: accept it with --accept-license; nothing was converted"
        )
    required = _lookup(base.requires) if base.requires else None
    parts: dict[str, Path] = {}
    main_digest = ""
    for given in files:
        path = Path(given).expanduser()
        if not path.is_file():
            raise WeightsError(f"{given}: no such file")
        digest = file_sha256(path)
        if required is not None and "clip" not in parts and required.matches(digest):
            parts["clip"] = path
        elif "main" not in parts:
            if not base.matches(digest) and not other_weights:
                expected = base.sha256 or f"{base.sha256_prefix}..."
                raise WeightsError(
                    f"{given}: sha256 {digest[:16]}... is not {like}'s published file ({expected}); "
                    "pass --other-weights to convert another file of the same format"
                )
            parts["main"], main_digest = path, digest
        elif required is not None and "clip" not in parts and other_weights:
            parts["clip"] = path
        else:
            raise WeightsError(f"{given}: one file too many for {like}")
    if "main" not in parts:
        raise WeightsError(f"{like} needs its publisher's file ({base.url})")
    if required is not None and "clip" not in parts:
        if not _verified_digest(required):
            raise WeightsError(
                f"{like} also needs {required.path.name}: pass it as a second FILE, "
                f"or run `aesthete weights pull {required.name}`"
            )
        parts["clip"] = required.path
    directory = paths.weights_cache_dir()
    staging = directory / f".add-{name}.safetensors"
    try:  # however it ends (an error, Ctrl-C), no staged copy or its digest record is left behind
        converted = _convert_into(base, parts, staging, main_digest)
        dest = directory / f"{converted[:16]}-{name}.safetensors"
        meta = read_meta(staging)
        record: dict[str, str | int | None] = {
            "kind": "aesthetic",
            "arch": meta["arch"],
            "backbone": base.backbone,
            "dataset": base.dataset,
            "bins": meta["bins"] or None,
            "output": meta["output"],
            "policy": InputPolicy.from_dict(meta["policy"]).key,
            "sha256": converted,
            "path": str(dest.resolve()),
            "license": base.license,
            "like": like,
            "source": _printable(str(parts["main"].resolve())),
            "added": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        registry_text = _registry_with(name, record)  # checked before anything is written
        _install(staging, dest, converted, registry_text)
    finally:
        staging.unlink(missing_ok=True)
        _digest_record(staging).unlink(missing_ok=True)
    return replace(_lookup(name), available=True)
