"""Bursts and near-duplicates: which frames group, which do not, and when the grouping is recomputed."""

from __future__ import annotations

from pathlib import Path

import pytest
from photoset import EXPECTED_GROUPS, SHOOT, frame, snapshot, write_photo, write_shoot

from aesthete.groups import BURST_GAP_SECONDS, PHASH_MAX_DISTANCE, Moment, ensure_groups, find_groups
from aesthete.scoring import score
from aesthete.signals import hash_distance, perceptual_hash
from aesthete.store import Store


def named_groups(store: Store) -> list[set[str]]:
    """The stored groups of more than one photo, as sets of file names."""
    by_hash: dict[str, set[str]] = {}
    for row in store.photos(None):
        by_hash.setdefault(row["content_hash"], set()).add(Path(row["path"]).name)
    members: dict[int, set[str]] = {}
    for content_hash, (group_id, _) in ensure_groups(store).items():
        members.setdefault(group_id, set()).update(by_hash.get(content_hash, set()))
    return sorted((m for m in members.values() if len(m) > 1), key=sorted)


@pytest.fixture
def shoot(tmp_path: Path) -> tuple[Path, Store]:
    folder = write_shoot(tmp_path / "shoot")
    store = Store(tmp_path / "a.db")
    assert score([str(folder)], store=store, model="nima", workers=1).analysed == len(SHOOT)
    return folder, store


def test_burst_variants_group_and_other_moments_do_not(shoot: tuple[Path, Store]) -> None:
    folder, store = shoot
    before = snapshot(folder)
    # Shifted, re-exposed (+-1 EV) and re-cropped frames of one moment are one group; the same scene
    # an hour later, from another camera, or a different scene seconds later are not; photos without
    # EXIF group by file time.
    assert named_groups(store) == EXPECTED_GROUPS
    assert snapshot(folder) == before


def test_single_linkage_follows_a_burst_but_not_across_gaps_or_cameras() -> None:
    drift = [(1 << (2 * i)) - 1 for i in range(0, 32, 5)]  # each frame 10 bits from the last, ends ~60 apart
    chain = [Moment(f"c{i}", "cam", 8.0 * i, bits) for i, bits in enumerate(drift)]
    assert (drift[0] ^ drift[-1]).bit_count() > PHASH_MAX_DISTANCE
    late = Moment("late", "cam", chain[-1].seconds + BURST_GAP_SECONDS + 1, drift[-1])
    other_camera = Moment("other", "cam2", 0.0, drift[0])
    no_hash = Moment("nohash", "cam", 0.0, None)
    groups = find_groups([late, no_hash, *reversed(chain), other_camera])
    # Numbered by the time of their first frame (then camera, then hash); members in time order.
    assert [(g.group_id, g.members) for g in groups] == [
        (1, tuple(m.content_hash for m in chain)), (2, ("nohash",)), (3, ("other",)), (4, ("late",)),
    ]  # fmt: skip


def test_grouping_is_right_across_many_scenes() -> None:
    """Eight scenes, each a four-frame burst (shift, +1 EV, -1 EV, 5% crop), shot back to back with the
    same camera so every burst is within the time window of its neighbours: pixels must separate them."""
    moments = []
    for seed in range(1, 9):
        variants = [frame(seed), frame(seed, 4), frame(seed, 4, 1.0), frame(seed, 0, -1.0), frame(seed, crop=0.05)]
        for i, image in enumerate(variants):
            moments.append(Moment(f"{seed}-{i}", "cam", seed * 6.0 + i, int(perceptual_hash(image), 16)))
    groups = find_groups(moments)
    assert sorted(sorted(g.members) for g in groups) == [[f"{s}-{i}" for i in range(5)] for s in range(1, 9)]


def test_thresholds_separate_the_generated_scenes() -> None:
    """The documented margins: burst variants stay within the pHash threshold of their frame, and
    unrelated scenes are far beyond it."""
    hashes = {seed: perceptual_hash(frame(seed)) for seed in range(1, 9)}
    worst_same = max(
        hash_distance(hashes[seed], perceptual_hash(variant))
        for seed in hashes
        for variant in (frame(seed, 4), frame(seed, 0, -1.0), frame(seed, crop=0.05))
    )
    closest_other = min(hash_distance(a, b) for i, a in hashes.items() for j, b in hashes.items() if i < j)
    assert worst_same <= PHASH_MAX_DISTANCE < closest_other


def test_groups_are_recomputed_only_when_membership_can_change(
    shoot: tuple[Path, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, store = shoot
    calls = []
    original = store.replace_groups
    monkeypatch.setattr(store, "replace_groups", lambda *a, **k: (calls.append(1), original(*a, **k)))
    ensure_groups(store)
    ensure_groups(store)
    assert len(calls) == 1
    # A rescan that finds nothing new, or a touched file whose EXIF time stands, changes nothing.
    (folder / "a1.jpg").touch()
    score([str(folder)], store=store, model="nima", workers=1)
    ensure_groups(store)
    assert len(calls) == 1
    # A new frame of the burst: recomputed, and it joins.
    write_photo(folder / "a6.jpg", frame(1, 2), "2024:05:01 12:00:09", "Canon EOS R5")
    score([str(folder)], store=store, model="nima", workers=1)
    assert {"a1.jpg", "a6.jpg"} <= named_groups(store)[0]
    assert len(calls) == 2
