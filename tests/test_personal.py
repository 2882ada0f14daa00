"""The personal model: learned from ratings in every source format, it ranks unseen photos by the rule."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from aesthete import personal
from aesthete.fingerprint import hash_file
from aesthete.personal import CrossValidation, NotEnoughRatings, PersonalError
from aesthete.ratings import (
    Written,
    match_ratings,
    photographers_own,
    read_darktable,
    read_digikam,
    read_lightroom,
    read_xmp,
    record_written,
    written_ratings,
)
from aesthete.store import Store
from tests import ratinglib

RATED = 63  # the first RATED photos are rated; the rest are held out, never seen by any fit


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ratinglib.Photo], Store]:
    root = tmp_path_factory.mktemp("personal")
    photos = ratinglib.make_library(root / "Photos", 90)
    store = Store(root / "aesthete.db")
    ratinglib.fill_store(store, photos)
    return root, photos, store


def _features(store: Store, hashes: list[str]) -> np.ndarray:
    rows = {r["content_hash"]: r for r in store.photos(None)}
    return personal.feature_matrix([rows[h] for h in hashes])


def _write_source(kind: str, where: Path, photos: list[ratinglib.Photo]) -> list:
    rated = photos[:RATED]
    if kind in ("sidecar", "adobe-sidecar"):
        ratinglib.write_sidecars(rated, adobe=kind == "adobe-sidecar")
        return read_xmp([str(p.path) for p in photos])
    if kind == "embedded":  # Lightroom's "save metadata to file": the XMP inside each rated JPEG
        return read_xmp([str(p.path) for p in photos])
    if kind == "lightroom":
        ratinglib.lightroom_catalog(where / "cat.lrcat", rated)
        return read_lightroom(where / "cat.lrcat")
    if kind.startswith("darktable"):
        ratinglib.darktable_library(where / "library.db", rated, old_reject=kind.endswith("old"))
        return read_darktable(where / "library.db")
    ratinglib.digikam_database(where / "digikam4.db", rated)
    return read_digikam(where / "digikam4.db")


@pytest.mark.parametrize(
    "kind", ["sidecar", "adobe-sidecar", "embedded", "lightroom", "darktable", "darktable-old", "digikam"]
)
def test_learns_the_rule_from_every_source(tmp_path: Path, world, kind: str) -> None:
    _, photos, store = world
    folder = tmp_path / kind
    folder.mkdir()
    if kind in ("sidecar", "adobe-sidecar", "embedded"):  # XMP lives with the photos: a private library
        photos = ratinglib.make_library(folder / "Photos", 90)
        if kind == "embedded":
            for p in photos[:RATED]:
                p.path.write_bytes(ratinglib.jpeg_with_xmp(p.path.read_bytes(), ratinglib.xmp_packet(p.rating)))
                p.content_hash = hash_file(p.path)
        store = Store(folder / "aesthete.db")
        ratinglib.fill_store(store, photos)
    ratings = _write_source(kind, folder, photos)
    result = match_ratings(ratings, store)
    assert {m.how for m in result.matched} == {"path"}
    own, left_out = photographers_own(result.matched, {})
    assert left_out == 0 and len(own) >= RATED - 10
    y = personal.targets([j.rating for j in own])
    x = _features(store, [j.content_hash for j in own])
    cv = personal.cross_validate(x, y, baseline=x[:, 0])  # baseline: sharpness alone
    table = cv.table()
    assert table[0]["model"] == "personal" and table[0]["srcc"] > 0.8, table
    head = personal.fit_head(x, y)
    held = photos[RATED:]
    predicted = head.predict(_features(store, [p.content_hash for p in held]))
    truth = np.array([max(p.rating, 0) for p in held], dtype=float)
    assert personal.srcc(truth, predicted) > 0.8


def test_written_ratings_ignored_and_corrections_used(tmp_path: Path) -> None:

    photos = ratinglib.make_library(tmp_path / "Photos", 60)
    store = Store(tmp_path / "aesthete.db")
    ratinglib.fill_store(store, photos)
    # aesthete (a poor model) wrote the opposite of the rule into every sidecar ...
    wrong = {p.content_hash: 6 - max(p.rating, 1) for p in photos}
    record_written(store, [Written(str(p.path), p.content_hash, wrong[p.content_hash]) for p in photos])
    # ... and the photographer corrected half of them; the other half still carry aesthete's stars
    corrected = photos[::2]
    for p in photos:
        stars = p.rating if p in corrected else wrong[p.content_hash]
        Path(str(p.path) + ".xmp").write_bytes(ratinglib.xmp_packet(stars))
    matched = match_ratings(read_xmp([str(p.path) for p in photos]), store).matched
    own, left_out = photographers_own(matched, written_ratings(store))
    same = sum(1 for p in corrected if p.rating == wrong[p.content_hash])  # corrections that equal what was written
    assert left_out == len(photos) - len(corrected) + same
    assert {j.content_hash for j in own} <= {p.content_hash for p in corrected}
    assert all(j.changed and j.weight == 2.0 for j in own)
    x = _features(store, [j.content_hash for j in own])
    y = personal.targets([j.rating for j in own])
    cv = personal.cross_validate(x, y, np.array([j.weight for j in own]))
    assert cv.table()[0]["srcc"] > 0.8
    # learning from everything, aesthete's own stars included, is what the filter prevents
    everything = personal.targets([m.rating for m in matched])
    x_all = _features(store, [m.content_hash for m in matched])
    assert personal.cross_validate(x_all, everything).table()[0]["srcc"] < cv.table()[0]["srcc"]


def test_refusals_are_one_line() -> None:
    x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    with pytest.raises(NotEnoughRatings, match="needs at least 20") as few:
        personal.fit_head(x[:5], np.arange(5.0))
    with pytest.raises(NotEnoughRatings, match="same rating") as same:
        personal.cross_validate(x, np.full(30, 3.0))
    with pytest.raises(PersonalError, match="unknown method"):
        personal.fit_head(x, np.arange(30.0) % 5, method="forest")
    assert "\n" not in str(few.value) + str(same.value)


@pytest.mark.parametrize("method", personal.METHODS)
def test_the_fewest_ratings_allowed_are_enough_to_cross_validate(method: str) -> None:
    """The field test's refusal of 22 ratings as "17 rated photos": each training fold (4/5 of them) was
    held to the whole set's minimum. The minimum applies to the set; a fold trains on what it has."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(personal.MIN_RATINGS, 6)).astype(np.float32)
    y = np.arange(personal.MIN_RATINGS, dtype=np.float64) % 5 + 1
    cv = personal.cross_validate(x, y, method=method)
    assert cv.photos == personal.MIN_RATINGS and cv.folds == 5 and len(cv.personal_srcc) == 5
    with pytest.raises(NotEnoughRatings, match=f"{personal.MIN_RATINGS - 1} rated photo"):
        personal.cross_validate(x[1:], y[1:], method=method)


def test_every_method_fits_and_predicts_stars() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 12)).astype(np.float32)
    latent = x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.normal(size=200)
    y = np.digitize(latent, np.quantile(latent, [0.2, 0.4, 0.6, 0.8])).astype(float) + 1
    for method in personal.METHODS:
        head = personal.fit_head(x, y, method=method)
        predicted = head.predict(x)
        assert personal.srcc(y, predicted) > 0.8, method
        assert 1.5 < predicted.mean() < 4.5, method  # on the star scale, whatever the method


def test_metrics() -> None:
    assert personal.srcc(np.array([1, 2, 3, 4]), np.array([10, 20, 30, 40])) == pytest.approx(1.0)
    assert personal.srcc(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    assert np.isnan(personal.srcc(np.array([1, 2, 3]), np.array([5, 5, 5])))
    assert personal.pairwise_accuracy(np.array([1, 2, 3]), np.array([1, 2, 3])) == 1.0
    assert personal.pairwise_accuracy(np.array([1, 2, 3]), np.array([3, 2, 1])) == 0.0
    assert personal.pairwise_accuracy(np.array([1, 2, 2]), np.array([0, 0, 1])) == pytest.approx(0.75)
    folds = personal.fold_ids(np.repeat(np.arange(5.0), 10), 5)
    assert all(sorted(np.repeat(np.arange(5.0), 10)[folds == k]) == list(np.arange(5.0).repeat(2)) for k in range(5))


def test_targets_from_picks_only() -> None:
    from aesthete.ratings import Rating

    assert personal.targets([Rating("a", 0, 1), Rating("b", 0, -1), Rating("c", 0, 0)]).tolist()[:2] == [1.0, 0.0]
    mixed = personal.targets([Rating("a", 0, 1), Rating("b", 4), Rating("c", -1)])
    assert np.isnan(mixed[0]) and mixed[1:].tolist() == [4.0, 0.0]


def test_saved_head_describes_itself(tmp_path: Path) -> None:
    from safetensors import safe_open

    rng = np.random.default_rng(1)
    x = np.hstack([rng.normal(size=(40, 7)), rng.normal(size=(40, 16))]).astype(np.float32)
    y = (x[:, 0] > 0).astype(float) * 3 + 1
    spec = personal.feature_spec(16, "nima/resnet18 penultimate")
    head = personal.fit_head(x, y, spec=spec, base_model="nima", base_weights="mine")
    cv = personal.cross_validate(x, y)
    path = tmp_path / "me.safetensors"
    personal.save_head(head, path, cv)
    loaded = personal.load_head(path)
    assert np.allclose(loaded.predict(x), head.predict(x), atol=1e-5)
    assert (loaded.base_model, loaded.base_weights, loaded.spec, loaded.method) == ("nima", "mine", spec, "ridge")
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == personal.FORMAT and '"folds": 5' in meta["cross_validation"]
    assert path.stat().st_size < 4096
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as any new file (safetensors' own writes are 0600)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(PersonalError, match="cannot read it"):
        personal.load_head(tmp_path / "junk.safetensors")


def _slow_ridge(z: np.ndarray, y: np.ndarray, w: np.ndarray, signals: int) -> tuple[np.ndarray, float, float]:
    """The penalty search as it was before the eigendecomposition path: one full solve per candidate."""
    signals = signals if 0 < signals < z.shape[1] else 0
    inner = personal.fold_ids(y, 5, seed=1) == 0
    system = personal._ridge_system(z[~inner], y[~inner], w[~inner], signals)
    best = (np.inf, 1.0, 1.0)
    for scale in personal._EMBEDDING_SCALES if signals else (1.0,):
        level = personal._level(system, scale)
        for lam in personal._LAMBDA_GRID * level:
            coef, intercept = personal._ridge_coef(system, lam, scale)
            error = float(np.average((z[inner] @ coef + intercept - y[inner]) ** 2, weights=w[inner]))
            if error < best[0]:
                best = (error, lam / level, scale)
    full = personal._ridge_system(z, y, w, signals)
    lam = best[1] * personal._level(full, best[2])
    return (*personal._ridge_coef(full, lam, best[2]), lam)


def _problem(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, 7:] = (rng.normal(size=(n, 6)) @ rng.normal(size=(6, d - 7)) + 0.5 * x[:, 7:]).astype(np.float32)
    y = np.clip(np.round(x[:, 0] + x[:, 8] * 0.3 + rng.normal(size=n) + 3), 0, 5).astype(np.float64)
    z, _, _ = personal._standardise(x)
    return z, y, rng.uniform(0.5, 2.0, size=n)


@pytest.mark.parametrize("n, d", [(120, 40), (30, 60)])  # primal (more photos than features) and dual
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ridge_path_matches_a_plain_solve_for_every_penalty(n: int, d: int, dtype: type) -> None:
    z, y, w = _problem(n, d)
    signals = 7
    system = personal._ridge_system(z.astype(dtype), y, w, signals)
    path = personal._RidgePath(system)
    zc, means, target_mean = system[4].astype(np.float64), system[5].astype(np.float64), system[6]
    yc = ((y - target_mean) * np.sqrt(w / w.mean()).astype(np.float32)).astype(np.float32).astype(np.float64)
    for scale in personal._EMBEDDING_SCALES:
        for lam in personal._LAMBDA_GRID * personal._level(system, scale):  # the penalties the search tries
            coef, intercept = path.coef(lam, scale)
            # The per-candidate solve the search made before (the same Gram matrices): within 1e-6. Its dual
            # (n x n) form rounds the dual coefficients to float32, which costs it up to ~3e-5 at the smallest
            # penalty here; the path is the closer one to the float64 reference below.
            slow, slow_intercept = personal._ridge_coef(system, lam, scale)
            tolerance = 1e-6 if n >= d else 1e-4
            assert np.abs(coef - slow).max() < tolerance and abs(intercept - slow_intercept) < tolerance, (scale, lam)
            if dtype is np.float32:  # float32 Gram matrices: the plain solve below is exact only in float64
                continue
            # The reference: the normal equations with penalty lam on the signals, lam / scale^2 on the rest.
            cols = zc if scale else zc[:, :signals]
            penalty = np.full(cols.shape[1], lam)
            if scale:
                penalty[signals:] = lam / scale**2
            expected = np.linalg.solve(cols.T @ cols + np.diag(penalty), cols.T @ yc)
            expected = np.concatenate([expected, np.zeros(zc.shape[1] - len(expected))])
            assert np.abs(coef - expected).max() < 1e-6, (scale, lam)
            assert abs(intercept - (target_mean - means @ expected)) < 1e-6


@pytest.mark.parametrize("n, d", [(150, 47), (60, 207)])
def test_fast_penalty_search_fits_what_the_slow_one_did(n: int, d: int) -> None:
    z, y, w = _problem(n, d, seed=2)
    coef, intercept, lam = personal._ridge(z, y, w, signals=7)
    slow_coef, slow_intercept, slow_lam = _slow_ridge(z, y, w, signals=7)
    assert lam == slow_lam
    assert np.abs(coef - slow_coef).max() < 1e-6 and abs(intercept - slow_intercept) < 1e-6


def test_doubts_say_when_the_held_out_figures_argue_against_the_head() -> None:
    def cv(mine: list[float], base: list[float] | None) -> CrossValidation:
        return CrossValidation(len(mine), 40, "ridge", mine, mine, base, base)

    assert cv([0.8, 0.85, 0.9], [0.1, 0.2, 0.15]).doubts() == []
    (chance,) = cv([0.3, -0.3, 0.15], [0.1, 0.2, 0.15]).doubts()
    assert chance.startswith("on held-out photos this head orders your ratings no better than chance (SRCC 0.050 ± ")
    (worse,) = cv([0.3, 0.35, 0.4], [0.7, 0.75, 0.8]).doubts()
    assert worse.startswith("the base model's own scores order your ratings better than this head (SRCC 0.750 ± ")
    assert cv([0.3, 0.35, 0.4], None).doubts() == []  # embed-only: no base row to compare
