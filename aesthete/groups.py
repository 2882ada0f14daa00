"""Bursts and near-duplicates: frames of the same moment that a cull should pick from, not all keep.

Two photos are *linked* when they come from the same camera (EXIF make and model), were taken at most
:data:`BURST_GAP_SECONDS` apart, and their perceptual hashes (the 64-bit DCT pHash computed by
``score``, see :func:`aesthete.signals.perceptual_hash`) differ in at most :data:`PHASH_MAX_DISTANCE`
bits. A group is a connected set of links (single linkage), so a long burst in which each frame is
close to the previous one stays one group even when its first and last frames differ more.

Time alone would merge a turn from the bride to the cake; pixels alone would merge two visits to the
same view hours apart. Together they separate both, while a frame shifted a few pixels, re-exposed by a
stop or re-cropped by 5% still joins its neighbours (see the thresholds below).

Capture time is EXIF ``DateTimeOriginal`` (to the second); a photo without one falls back to its file
modification time, read as local time like EXIF. The grouping is computed over the whole database and
stored; a fingerprint of its inputs (hashes, camera, time, pHash) and of the thresholds decides whether it
must be recomputed, so a ``cull`` after an unchanged rescan costs one query.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aesthete.store import Store

BURST_GAP_SECONDS = 10.0
"""Largest gap between two linked frames. Bursts are fractions of a second apart; re-framing or changing
the exposure of the same moment takes a few seconds. Links chain, so a 30-second burst is one group."""

PHASH_MAX_DISTANCE = 16
"""Largest pHash Hamming distance (of 64 bits) between two linked frames. Measured on generated scenes
(tests/test_groups.py): shifts of a few pixels flip at most ~10 bits, one stop more exposure up to ~16
(clipping), a 5% re-crop ~12; unrelated scenes differ in ~32 bits, and in no fewer than ~20. The
time window guards against the remaining coincidences."""

_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class Moment:
    """What grouping knows about one photo (one content hash)."""

    content_hash: str
    camera: str  # make and model, as written by the camera; empty when unknown
    seconds: float  # capture time in seconds (local time, naive), EXIF or file time
    phash: int | None


@dataclass(frozen=True)
class Group:
    """One stored group: its number (groups are numbered in time order) and its members."""

    group_id: int
    members: tuple[str, ...]  # content hashes in time order


def moments(rows: Iterable[tuple[str, str | None, str | None, str | None, int, str | None]]) -> list[Moment]:
    """:meth:`Store.grouping_inputs` rows -> moments; a photo without EXIF time uses its file time."""
    out = []
    for content_hash, make, camera, capture_time, mtime_ns, phash in rows:
        taken = _parse_time(capture_time) or datetime.fromtimestamp(mtime_ns / 1e9)
        out.append(
            Moment(
                content_hash=content_hash,
                camera=" ".join(part for part in (make, camera) if part),
                seconds=(taken - _EPOCH).total_seconds(),
                phash=int(phash, 16) if phash else None,
            )
        )
    return out


def _parse_time(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value).replace(tzinfo=None) if value else None
    except ValueError:
        return None


def find_groups(
    items: Sequence[Moment], *, gap: float = BURST_GAP_SECONDS, max_distance: int = PHASH_MAX_DISTANCE
) -> list[Group]:
    """Single-linkage groups of ``items`` (every photo is in exactly one group, most alone).

    Photos are sorted by (camera, time); each is compared only with the earlier photos of the same camera
    at most ``gap`` seconds before it, so the cost grows with the burst length, not the library size.
    """
    ordered = sorted(items, key=lambda m: (m.camera, m.seconds, m.content_hash))
    parent = list(range(len(ordered)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, current in enumerate(ordered):
        if current.phash is None:
            continue
        j = i - 1
        while j >= 0 and ordered[j].camera == current.camera and current.seconds - ordered[j].seconds <= gap:
            earlier = ordered[j]
            if earlier.phash is not None and (current.phash ^ earlier.phash).bit_count() <= max_distance:
                parent[root(i)] = root(j)
            j -= 1
    clusters: dict[int, list[Moment]] = {}
    for i, moment in enumerate(ordered):
        clusters.setdefault(root(i), []).append(moment)
    by_time = sorted(clusters.values(), key=lambda ms: (ms[0].seconds, ms[0].camera, ms[0].content_hash))
    return [
        Group(number, tuple(m.content_hash for m in sorted(ms, key=lambda m: (m.seconds, m.content_hash))))
        for number, ms in enumerate(by_time, start=1)
    ]


def _fingerprint(items: Sequence[Moment]) -> str:
    """Changes whenever a membership input or a threshold does, and never otherwise."""
    payload = json.dumps(
        [BURST_GAP_SECONDS, PHASH_MAX_DISTANCE, [(m.content_hash, m.camera, m.seconds, m.phash) for m in items]]
    )
    return hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()


def ensure_groups(store: Store) -> dict[str, tuple[int, int]]:
    """The stored grouping (content hash -> (group id, group size)), recomputed first if its inputs changed
    (and then stored, unless the database is open read-only)."""
    items = moments(store.grouping_inputs())
    fingerprint = _fingerprint(items)
    if store.group_fingerprint() != fingerprint:
        members = [(h, group.group_id, len(group.members)) for group in find_groups(items) for h in group.members]
        if store.read_only:
            return {h: (g, n) for h, g, n in members}
        store.replace_groups(members, fingerprint)
    return store.groups()


def annotate(rows: Sequence[dict[str, Any]], groups: dict[str, tuple[int, int]]) -> dict[int, list[dict[str, Any]]]:
    """Give each row its ``group`` id and ``group_size`` (counting only members among ``rows``, which is
    what a cull of these folders sees) and return the members of each group, in the order of ``rows``."""
    members: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        row["group"] = groups[row["content_hash"]][0]
        members.setdefault(row["group"], []).append(row)
    for row in rows:
        row["group_size"] = len(members[row["group"]])
    return members
