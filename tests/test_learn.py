"""``aesthete learn`` end to end: score a generated folder with a tiny model (embeddings stored), rate
photos by a visual rule, learn, then use the head as ``--weights NAME`` in rank, show, cull, report and
score; plus every catalog source through the library call, refusals, and aesthete's own ratings."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aesthete import learning, personal
from aesthete.cli import app
from aesthete.ratings import Written, record_written
from aesthete.scoring import score
from aesthete.store import ModelKey, Store
from tests import ratinglib

runner = CliRunner()
PHOTOS = 72
RATED = 54  # the first RATED photos are rated; the rest are held out (never seen by any fit)


def cli(*args: object) -> object:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoints: dict[str, Path]):
    """A folder scored with a tiny NIMA registered as ``tiny`` (so embeddings are stored); returns the
    folder, its photos and the database file. Module-scoped: the registry lives in its own XDG dirs."""
    root = tmp_path_factory.mktemp("learn")
    env = {f"AESTHETE_{n}_DIR": str(root / n.lower()) for n in ("DATA", "CACHE", "CONFIG")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        from aesthete import weights

        weights.add(tiny_checkpoints["nima"], name="tiny")
        photos = ratinglib.make_library(root / "Photos", PHOTOS)
        db = root / "aesthete.db"
        store = Store(db)
        summary = score([str(root / "Photos")], store=store, weights="tiny", device="cpu", precision="fp32",
                        workers=1)  # fmt: skip
        store.close()
        assert summary.scored == PHOTOS, summary
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return root, photos, db, env


@pytest.fixture
def env(scored, monkeypatch: pytest.MonkeyPatch):
    for k, v in scored[3].items():
        monkeypatch.setenv(k, v)
    return scored


def test_scoring_stores_one_float16_embedding_per_photo_keyed_like_its_score(env) -> None:
    _, photos, db, _ = env
    store = Store(db)
    key = store.latest_model_key()
    hashes, vectors = store.embeddings(key)
    assert sorted(hashes) == sorted(p.content_hash for p in photos)
    assert vectors.dtype == np.float16 and vectors.shape == (PHOTOS, 512)  # ResNet-18's pooled features
    assert np.isfinite(vectors).all() and np.ptp(vectors, axis=0).max() > 0
    row = store.conn.execute("SELECT dim, length(vector) FROM embeddings LIMIT 1").fetchone()
    assert row == (512, 1024)
    store.close()


def test_learn_cli_end_to_end_and_weights_everywhere(env, tmp_path: Path) -> None:
    root, photos, db, _ = env
    ratinglib.write_sidecars(photos[:RATED])
    try:
        result = cli("learn", root / "Photos", "--name", "mine", "--db", db)
        assert result.exit_code == 0, result.output
        assert "personal" in result.output and "base model" in result.output and "SRCC" in result.output
        assert "registered as weights 'mine'" in result.output
        data = json.loads(cli("learn", root / "Photos", "--name", "mine", "--db", db, "--json").stdout)
        table = {row["model"]: row for row in data["cross_validation"]["table"]}
        assert table["personal"]["srcc"] > 0.8, table  # the rule (blur, exposure) is learnable
        assert data["used"] == RATED and data["own"] == 0 and data["scored"] == PHOTOS
        assert data["base"]["model"] == "nima"
        many = json.loads(cli("learn", root / "Photos", "--name", "mine", "--folds", "50", "--db", db, "--json").stdout)
        assert many["cross_validation"]["folds"] == RATED // 4
        assert f"{RATED // 4} folds, not 50: each fold holds out at least 4 of the {RATED} photos" in many["notes"]
        on_a_head = cli("learn", root / "Photos", "--name", "again", "--weights", "mine", "--db", db)
        assert on_a_head.exit_code == 2 and "'mine' is a personal head; learn on the weights" in on_a_head.output

        # rank --weights: the held-out photos (never rated) follow the rule.
        ranked = json.loads(cli("rank", "--weights", "mine", "--db", db, "--json").stdout)
        assert ranked["model"] == "personal"
        by_path = {row["path"]: row["score"] for row in ranked["photos"]}  # one number: "score", as for LAION
        held = photos[RATED:]
        truth = np.array([max(p.rating, 0) for p in held], dtype=float)
        predicted = np.array([by_path[str(p.path)] for p in held])
        assert personal.srcc(truth, predicted) > 0.8
        assert all(row["output"] == "score" and row["dist"] is None for row in ranked["photos"])  # one number each

        culled = cli("cull", "--weights", "mine", "--top", "10", "--db", db, "--paths")
        assert culled.exit_code == 0, culled.output
        picks = culled.stdout.split()
        assert 1 <= len(picks) <= 10
        best = {str(p.path) for p in photos if p.rating == 5}
        assert sum(p in best for p in picks) >= len(picks) // 2  # best-of-group keeps some near-equals out

        shown = cli("show", photos[0].path, "--weights", "mine", "--db", db)
        assert shown.exit_code == 0 and "personal" in shown.output, shown.output  # the chosen scores listed first
        html = tmp_path / "sheet.html"
        assert cli("report", "--html", html, "--weights", "mine", "--db", db).exit_code == 0
        assert "score " in html.read_text()

        # score --weights mine: a new photo gets a base embedding and a personal score, nothing else decoded.
        new = root / "Photos" / "new"
        new.mkdir()
        shutil.copy(photos[-1].path, new / "copy.jpg")  # same content: recognised, not decoded
        extra = ratinglib.make_library(new, 1, seed=7)[0]
        scored_new = cli("score", root / "Photos", "--weights", "mine", "--db", db, "--device", "cpu", "--json")
        assert scored_new.exit_code == 0, scored_new.output
        summary = json.loads(scored_new.stdout)
        assert summary["scored"] == 1 and summary["personal"] == PHOTOS + 1
        store = Store(db)
        key = learning.scores_key("mine")
        assert extra.content_hash in store.scored_hashes(key)
        store.close()
    finally:
        for p in photos[:RATED]:
            Path(str(p.path) + ".xmp").unlink(missing_ok=True)


def test_refusals_are_one_line(env) -> None:
    root, photos, db, _ = env
    ratinglib.write_sidecars(photos[:5])
    try:
        few = cli("learn", root / "Photos", "--name", "few", "--db", db)
        assert few.exit_code == 2 and "at least" in few.output and len(few.output.strip().splitlines()) == 1
    finally:
        for p in photos[:5]:
            Path(str(p.path) + ".xmp").unlink()
    same = photos[:25]  # every one rated 4, whatever it looks like
    for p in same:
        p.path.with_name(p.path.name + ".xmp").write_bytes(ratinglib.xmp_packet(4))
    try:
        equal = cli("learn", root / "Photos", "--name", "same", "--db", db)
        assert equal.exit_code == 2 and "same rating" in equal.output
        assert len(equal.output.strip().splitlines()) == 1
    finally:
        for p in same:
            Path(str(p.path) + ".xmp").unlink()
    Store(root / "signals-only.db").close()
    nothing = cli("learn", root / "Photos", "--name", "early", "--db", root / "signals-only.db")
    assert nothing.exit_code == 3 and "no model has scored a photo in this database yet" in nothing.output
    assert len(nothing.output.strip().splitlines()) == 1
    taken = cli("learn", "--name", "tiny", "--db", db)
    assert taken.exit_code == 2 and "already names registered weights" in taken.output
    assert cli("learn", "--name", "x", "--from", "lightroom", "--db", db).exit_code == 2  # no catalog FILE
    assert cli("rank", "--weights", "nope", "--db", db).exit_code == 2


@pytest.mark.parametrize("kind", ["lightroom", "darktable", "digikam"])
def test_learn_from_each_catalog_leaves_it_untouched(env, tmp_path: Path, kind: str) -> None:
    _, photos, db, _ = env
    catalog = tmp_path / {"lightroom": "cat.lrcat", "darktable": "library.db", "digikam": "digikam4.db"}[kind]
    getattr(ratinglib, {"lightroom": "lightroom_catalog", "darktable": "darktable_library",
                        "digikam": "digikam_database"}[kind])(catalog, photos[:RATED])  # fmt: skip
    before = (catalog.read_bytes(), catalog.stat().st_mtime_ns, sorted(os.listdir(tmp_path)))
    store = Store(db)
    report = learning.learn(store, name=f"from-{kind}", source=kind, catalog=catalog)
    store.close()
    assert (catalog.read_bytes(), catalog.stat().st_mtime_ns, sorted(os.listdir(tmp_path))) == before
    assert report.matched == RATED and report.cv.table()[0]["srcc"] > 0.8, report.cv.table()


def test_aesthetes_own_ratings_are_left_out_and_corrections_used(env) -> None:
    root, photos, db, _ = env
    rated = photos[:RATED]
    store = Store(db)
    # aesthete wrote a rating for every rated photo; the photographer changed a third of them.
    wrote = {p.content_hash: (p.rating if i % 3 else (1 if p.rating != 1 else 2)) for i, p in enumerate(rated)}
    record_written(store, [Written(str(p.path), p.content_hash, wrote[p.content_hash]) for p in rated])
    ratinglib.write_sidecars(rated)
    try:
        # 18 corrections: below the minimum of 20; the refusal says where the other ratings went
        where = rf"read {RATED} rating\(s\): {RATED} matched to scanned photos, {RATED - 18} written by aesthete"
        with pytest.raises(personal.NotEnoughRatings, match=rf"^18 rated photo\(s\); .*\({where} \(left out\)\)$"):
            learning.learn(store, name="corrections", roots=[str(root / "Photos")])
        changed = sum(1 for p in rated if wrote[p.content_hash] != p.rating)
        assert changed == RATED // 3
        store.conn.execute("DELETE FROM written_ratings WHERE rowid % 2 = 0")  # forget half of what was written
        report = learning.learn(store, name="corrections", roots=[str(root / "Photos")])
        assert report.own > 0 and report.corrected > 0 and report.used == RATED - report.own
    finally:
        store.conn.execute("DELETE FROM written_ratings")
        store.close()
        for p in rated:
            Path(str(p.path) + ".xmp").unlink(missing_ok=True)


def test_scores_key_of_a_head_is_its_digest_and_base_preprocess(env) -> None:
    _, _, db, _ = env
    path = learning.head_path("mine") or learning.head_path("from-lightroom")
    if path is None:  # this test alone: learn one first
        store = Store(db)
        ratinglib.lightroom_catalog(Path(db).parent / "k.lrcat", env[1][:RATED])
        learning.learn(store, name="mine", source="lightroom", catalog=Path(db).parent / "k.lrcat")
        store.close()
        path = learning.head_path("mine")
    head = personal.load_head(path)
    key = learning.scores_key(path.stem)
    assert isinstance(key, ModelKey) and key.model == "personal" and key.preprocess == head.extra["base_preprocess"]
    assert head.base_model == "nima" and head.base_weights == "tiny"


def test_ratings_of_photos_never_scanned_go_to_no_scanned_photo_of_the_same_name(env, tmp_path: Path) -> None:
    """A catalog covers more than was scored: its other photos exist, under names the camera used again."""
    _, photos, db, _ = env
    others = ratinglib.make_library(tmp_path / "Unscanned", 24, size=(48, 36), seed=9)
    assert {p.path.name for p in others} <= {p.path.name for p in photos}
    catalog = tmp_path / "cat.lrcat"
    ratinglib.lightroom_catalog(catalog, others)
    result = cli("learn", "--name", "namesakes", "--from", "lightroom", catalog, "--db", db)
    assert result.exit_code == 2, result.output
    assert "(read 24 rating(s): 24 not on a photo aesthete scanned)" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_library_moved_and_scored_again_learns_from_the_catalog_of_its_old_place(env, tmp_path: Path) -> None:
    """The catalog names the old place, whose rows stay in the database beside the new place's; learning
    on the new folder keeps the ratings (same content), rather than dropping them as outside it."""
    _, photos, db, _ = env
    moved_db = tmp_path / "moved.db"
    shutil.copy(db, moved_db)
    old, new = tmp_path / "Old", tmp_path / "New"
    at_old = [dataclasses.replace(p, path=old / p.path.parent.name / p.path.name) for p in photos[:RATED]]
    for p, q in zip(photos, at_old):
        q.path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p.path, q.path)
    store = Store(moved_db)
    ratinglib.fill_store(store, at_old)  # scored at the old place
    catalog = tmp_path / "cat.lrcat"
    ratinglib.lightroom_catalog(catalog, at_old)
    old.rename(new)
    ratinglib.fill_store(store, [dataclasses.replace(p, path=new / p.path.relative_to(old)) for p in at_old])
    try:
        report = learning.learn(store, name="moved", roots=[str(new)], source="lightroom", catalog=catalog)
    finally:
        store.close()
    assert report.matched == RATED and report.used == RATED


def test_a_catalog_read_with_the_wrong_from_names_the_right_one_and_stays_untouched(env, tmp_path: Path) -> None:
    """`learn ~/Photos cat.lrcat` (no --from: xmp) used to read 0 ratings from a "folder" of no photos."""
    root, photos, db, _ = env
    lrcat, library = tmp_path / "cat.lrcat", tmp_path / "library.db"
    ratinglib.lightroom_catalog(lrcat, photos[:RATED])
    ratinglib.darktable_library(library, photos[:RATED])
    before = [(f.read_bytes(), f.stat().st_mtime_ns) for f in (lrcat, library)], sorted(os.listdir(tmp_path))
    no_from = cli("learn", root / "Photos", lrcat, "--name", "x", "--db", db)
    assert no_from.exit_code == 2 and "is a Lightroom Classic catalog: read its ratings with --from lightroom" in (
        no_from.output
    )
    wrong = cli("learn", "--name", "x", "--from", "digikam", library, "--db", db)
    told = "not a digiKam database (no table ImageInformation); it is a darktable library: --from darktable"
    assert wrong.exit_code == 2 and told in wrong.output
    for result in (no_from, wrong):
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert ([(f.read_bytes(), f.stat().st_mtime_ns) for f in (lrcat, library)], sorted(os.listdir(tmp_path))) == before


def test_learning_on_a_folder_never_scored_says_to_score_it(env, tmp_path: Path) -> None:
    _, _, db, _ = env
    ratinglib.write_sidecars(ratinglib.make_library(tmp_path / "New", 24, size=(48, 36), seed=5))
    result = cli("learn", tmp_path / "New", "--name", "x", "--db", db)
    assert result.exit_code == 3, result.output
    assert (
        result.output.strip()
        == f"error: no photos under {tmp_path / 'New'} in the database: run `aesthete score` on it first"
    )


def test_a_head_no_better_than_chance_says_so(env) -> None:
    """Stars that follow nothing in the photos (drawn from their digests): the head is registered, and
    the report says the held-out figures do not back it."""
    root, photos, db, _ = env
    arbitrary = [dataclasses.replace(p, rating=int(p.content_hash[-8:], 16) % 6 or -1) for p in photos[:RATED]]
    ratinglib.write_sidecars(arbitrary)
    store = Store(db)
    try:
        report = learning.learn(store, name="noise", roots=[str(root / "Photos")])
    finally:
        store.close()
        for p in arbitrary:
            Path(str(p.path) + ".xmp").unlink()
    assert any("this head orders your ratings no better than chance" in note for note in report.notes), (
        report.cv.table()
    )


def test_sidecars_that_do_not_parse_or_disagree_are_named_in_the_notes(env) -> None:
    """They used to be passed over in silence: a damaged sidecar's stars simply missing from the count, and
    of two sidecars that disagree (darktable's IMG.jpg.xmp, Adobe's IMG.xmp) one chosen unsaid."""
    root, photos, db, _ = env
    rated = photos[:RATED]
    ratinglib.write_sidecars(rated)
    broken, other, adobe = rated[0].path, rated[1].path, rated[2].path.with_suffix(".xmp")
    Path(f"{broken}.xmp").write_bytes(b"<x:xmpmeta><rdf:RDF")  # cut off mid-write
    Path(f"{other}.xmp").write_bytes(ratinglib.xmp_packet(7))
    written = os.stat(f"{rated[2].path}.xmp").st_mtime_ns
    adobe.write_bytes(ratinglib.xmp_packet(1 if rated[2].rating != 1 else 2))
    os.utime(adobe, ns=(written + 10**9, written + 10**9))  # written a second later: it wins
    store = Store(db)
    try:
        report = learning.learn(store, name="damaged", roots=[str(root / "Photos")])
    finally:
        store.close()
        adobe.unlink()
        for p in rated:
            Path(str(p.path) + ".xmp").unlink()
    assert report.ratings == RATED - 2
    assert other.parent.name == "day1" and broken.parent.name == "day2"  # the first by path is named
    assert f"2 sidecar(s) could not be read and were left out (first: {other}.xmp: xmp:Rating '7' is not -1..5)" in (
        report.notes
    )
    said = f"{1 if rated[2].rating != 1 else 2}, the other said {rated[2].rating}"
    told = f"1 photo(s) have sidecars that disagree; the one written last was used (first: {rated[2].path}: {said})"
    assert told in report.notes


def test_copies_rated_differently_are_named_and_the_one_read_last_counts(env, tmp_path: Path) -> None:
    """One photo in two scanned folders, each copy with its own sidecar: learning counts the photo once
    (its content), and when the copies' stars differ it says which photo and what each copy said (field
    test: the last one read won in silence). Copies rated alike say nothing."""
    _, photos, db, _ = env
    rated = photos[:RATED]
    first = rated[0]
    unlike = 1 if first.rating != 1 else 2
    copies_db = tmp_path / "copies.db"
    shutil.copy(db, copies_db)
    alike = dataclasses.replace(rated[1], path=tmp_path / "Alike" / rated[1].path.name)
    copy = dataclasses.replace(first, path=tmp_path / "Copies" / first.path.name, rating=unlike)
    for original, duplicate in ((first, copy), (rated[1], alike)):
        duplicate.path.parent.mkdir()
        shutil.copy(original.path, duplicate.path)
    ratinglib.write_sidecars([*rated, copy, alike])
    store = Store(copies_db)
    try:
        ratinglib.fill_store(store, [copy, alike])
        report = learning.learn(store, name="copies")
    finally:
        store.close()
        for p in [*rated, copy, alike]:
            Path(str(p.path) + ".xmp").unlink()
    assert (report.matched, report.used) == (RATED + 2, RATED)
    stars = f"{first.rating} star{'s' if first.rating > 1 else ''}" if first.rating > 0 else "rejected"
    told = (f"1 photo(s) have copies rated differently; the one read last was used (first: {first.path}: {stars}, "
            f"its copy {copy.path}: {unlike} star{'s' if unlike > 1 else ''})")  # fmt: skip
    assert told in report.notes, report.notes


def test_sidecars_of_photos_never_scored_are_said_to_need_a_score(env, tmp_path: Path) -> None:
    """Photos added to a folder after its last ``score`` and rated: ``learn`` reads the sidecars of scanned
    photos only, and used to pass these over in silence; it now counts them and names the first."""
    root, photos, db, _ = env
    rated = photos[:RATED]
    later = ratinglib.make_library(tmp_path / "Later", 3, size=(48, 36), seed=7)  # day2/0, day1/1, day2/2
    ratinglib.write_sidecars([*rated, later[0]])
    ratinglib.write_sidecars([later[2]], adobe=True)  # IMG_0002.xmp; IMG_0001 has no sidecar
    store = Store(db)
    try:
        report = learning.learn(store, name="later", roots=[str(root / "Photos"), str(tmp_path / "Later")])
        quiet = learning.learn(store, name="later", roots=[str(root / "Photos")])
    finally:
        store.close()
        for p in rated:
            Path(str(p.path) + ".xmp").unlink()
    assert report.used == RATED
    told = (f"2 photo(s) with a sidecar were never scored, so their ratings were not read (first: {later[0].path}): "
            "`aesthete score` their folder, then learn again")  # fmt: skip
    assert told in report.notes, report.notes
    assert not [note for note in quiet.notes if "never scored" in note], quiet.notes


def test_scoring_with_a_head_whose_base_weights_were_removed_names_the_head(
    env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, photos, db, _ = env
    catalog = tmp_path / "cat.lrcat"
    ratinglib.lightroom_catalog(catalog, photos[:RATED])
    store = Store(db)
    learning.learn(store, name="orphan", source="lightroom", catalog=catalog)
    store.close()
    for n in ("CONFIG", "CACHE"):  # a registry without 'tiny': as after `aesthete weights remove tiny`
        monkeypatch.setenv(f"AESTHETE_{n}_DIR", str(tmp_path / n.lower()))
    result = cli("score", root / "Photos", "--weights", "orphan", "--db", db, "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert result.output.startswith(
        "error: 'orphan' was learned on weights 'tiny', which are no longer registered: get them back"
    )
    assert len(result.output.strip().splitlines()) == 1


def test_learning_again_under_a_name_says_it_replaced_the_head_and_what_it_was(env, tmp_path: Path) -> None:
    _, photos, db, _ = env
    catalog = tmp_path / "cat.lrcat"
    ratinglib.lightroom_catalog(catalog, photos[:RATED])
    store = Store(db)
    try:
        first = learning.learn(store, name="twice", source="lightroom", catalog=catalog)
        second = learning.learn(store, name="twice", source="lightroom", catalog=catalog)
    finally:
        store.close()
    assert not any("replaced" in note for note in first.notes), first.notes
    figure = first.cv.table()[0]["srcc"]
    was = rf"\(learned \d{{4}}-\d\d-\d\d on {RATED} rated photos, cross-validated SRCC {figure:.3f}\)"
    told = rf"replaced the earlier head 'twice' {was}"
    assert any(re.fullmatch(told, note) for note in second.notes), second.notes


def test_show_lists_no_scores_of_heads_replaced_or_removed(env, tmp_path: Path) -> None:
    """Each `learn` again left the replaced head's scores behind, and `show` listed them under bare digests."""
    _, photos, db, _ = env
    catalog = tmp_path / "cat.lrcat"
    ratinglib.lightroom_catalog(catalog, photos[:RATED])
    store = Store(db)
    try:
        for name in ("kept", "kept", "gone"):
            learning.learn(store, name=name, source="lightroom", catalog=catalog)
    finally:
        store.close()
    assert cli("weights", "remove", "gone", "--yes").exit_code == 0
    shown = json.loads(cli("show", photos[0].path, "--weights", "kept", "--db", db, "--json").stdout)
    heads = [s["weights"] for s in shown["photo"]["scores"] if s["model"] == "personal"]
    assert "kept" in heads and "gone" not in heads
    assert all(learning.head_path(h) is not None for h in heads), heads


def test_learn_notes_are_one_line_each_whatever_the_width(env) -> None:
    """A note naming a sidecar was wrapped by Rich at the terminal's width, in the middle of the path."""
    root, photos, db, _ = env
    rated = photos[:RATED]
    ratinglib.write_sidecars(rated)
    Path(f"{rated[0].path}.xmp").write_bytes(b"<x:xmpmeta><rdf:RDF")
    try:
        result = cli("learn", root / "Photos", "--name", "wrapped", "--db", db)
    finally:
        for p in rated:
            Path(str(p.path) + ".xmp").unlink()
    assert result.exit_code == 0, result.output
    told = f"note: 1 sidecar(s) could not be read and were left out (first: {rated[0].path}.xmp: does not parse as XML)"
    assert told in result.output.splitlines(), result.output


def test_photos_scored_after_learning_without_the_head_are_said_how_to_get_its_score(env, tmp_path: Path) -> None:
    root, photos, db, _ = env
    later_db = tmp_path / "later.db"
    shutil.copy(db, later_db)
    catalog = tmp_path / "cat.lrcat"
    ratinglib.lightroom_catalog(catalog, photos[:RATED])
    store = Store(later_db)
    try:
        learning.learn(store, name="late", source="lightroom", catalog=catalog)
        ratinglib.fill_store(store, ratinglib.make_library(tmp_path / "Later", 2, size=(48, 36), seed=13))
    finally:
        store.close()
    ranked = cli("rank", "--weights", "late", "--db", later_db)
    assert ranked.exit_code == 0, ranked.output
    told = (
        "2 photo(s) have no personal score and are not ranked (`aesthete score --weights late FOLDER` gives them one)"
    )
    assert f"note: {told}" in ranked.output.splitlines(), ranked.output
