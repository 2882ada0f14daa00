"""Dataset readers on small folders written in AVA's and AADB's release formats, and the data pipeline
that turns their splits into batches."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesthete.input_policy import InputPolicy
from aesthete.training.aadb import ATTRIBUTES, image_name_from_url, read_aadb
from aesthete.training.ava import read_ava
from aesthete.training.datasets import read_dataset
from aesthete.training.splits import DatasetError, limit_splits, scan_images


def jpeg(path: Path, size: tuple[int, int] = (40, 30), *, orientation: int | None = None, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if orientation is None:
        image.save(path, quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(path, quality=90, exif=exif)


def ava_row(index: int, image_id: int, counts: list[int]) -> str:
    return f"{index} {image_id} {' '.join(map(str, counts))} 12 0 1396"


def write_ava(root: Path, n: int, *, images_dir: str = "images", test_ids: list[int] | None = None) -> list[int]:
    """n good rows (ids 1000..), plus a malformed line, a vote-less row, a row with a negative count and a
    duplicate id."""
    root.mkdir(parents=True, exist_ok=True)
    ids = list(range(1000, 1000 + n))
    rows = [ava_row(i + 1, image_id, [i % 7, 1, 2, 3, 4, 5, 4, 3, 2, 1]) for i, image_id in enumerate(ids)]
    rows += ["999 not a row", ava_row(n + 2, 5000, [0] * 10), ava_row(n + 3, ids[0], [1] * 10)]
    rows.append(ava_row(n + 4, 5001, [3, 2, -1, 4, 4, 4, 4, 4, 4, 4]))
    (root / "AVA.txt").write_text("\n".join(rows) + "\n")
    folder = root / images_dir if images_dir else root
    for k, image_id in enumerate(ids):
        jpeg(folder / f"{image_id}.jpg", seed=k)
    if test_ids is not None:
        lists = root / "aesthetics_image_lists"
        lists.mkdir()
        (lists / "generic_test.jpgl").write_text("".join(f"{t}\n" for t in test_ids))
    return ids


def test_ava_reads_votes_and_the_official_test_list(tmp_path: Path) -> None:
    ids = write_ava(tmp_path, 60, test_ids=[1000, 1001, 1002, 1003, 1004, 1005, 9999999])
    splits = read_ava(tmp_path, val_size=2000, split_seed=3)
    assert splits.test.ids == ["1000", "1001", "1002", "1003", "1004", "1005"]
    assert len(splits.val) == (60 - 6) // 10  # 2,000 capped at a tenth of the pool
    assert len(splits.train) + len(splits.val) == 54
    assert not set(splits.train.ids) & set(splits.val.ids)
    row = splits.test.ids.index("1003")
    np.testing.assert_array_equal(splits.test.votes[row], [3, 1, 2, 3, 4, 5, 4, 3, 2, 1])
    np.testing.assert_allclose(splits.test.dist.sum(axis=1), 1.0)
    assert splits.test.paths[row] == tmp_path / "images" / "1003.jpg"
    assert splits.report.dropped == {
        "malformed line in AVA.txt": 1,
        "no votes": 1,
        "negative vote count": 1,
        "duplicate id in AVA.txt": 1,
    }
    assert splits.report.examples["negative vote count"] == ["5001"]
    assert any("1 ids of generic_test.jpgl" in note for note in splits.report.notes)
    assert sorted(splits.train.ids + splits.val.ids + splits.test.ids) == [str(i) for i in ids]


def test_ava_random_split_is_seeded_and_proportional(tmp_path: Path) -> None:
    write_ava(tmp_path, 300, images_dir="")  # images beside AVA.txt are accepted too
    first = read_ava(tmp_path, split_seed=1)
    again = read_ava(tmp_path, split_seed=1)
    other = read_ava(tmp_path, split_seed=2)
    assert len(first.test) == round(300 * 19_930 / 255_530)
    assert first.test.ids == again.test.ids and first.val.ids == again.val.ids
    assert first.test.ids != other.test.ids
    assert first.train.paths[0].parent == tmp_path
    assert "random" in first.report.source["test split"]


def test_ava_explicit_list_in_another_format(tmp_path: Path) -> None:
    write_ava(tmp_path, 30)
    (tmp_path / "val.txt").write_text("1007.jpg 1\n1008.jpg 0\n")
    splits = read_dataset("ava", tmp_path, {"test_list": "val.txt", "val_size": 0})
    assert splits.test.ids == ["1007", "1008"] and len(splits.val) == 0
    # the way on is named (field test: `train hla-gcn --dataset ava` on the release stopped at val.txt only)
    with pytest.raises(DatasetError, match=r"nope.jpgl does not exist \(the recipe's data.test_list; --set data"):
        read_dataset("ava", tmp_path, {"test_list": "nope.jpgl"})
    with pytest.raises(DatasetError, match="no AVA.txt"):
        read_dataset("ava", tmp_path / "images")


def test_scan_drops_missing_and_corrupt_images_and_reads_orientation(tmp_path: Path) -> None:
    write_ava(tmp_path, 40, test_ids=[1000, 1001, 1002])
    (tmp_path / "images" / "1001.jpg").unlink()
    (tmp_path / "images" / "1010.jpg").write_bytes(b"\x00not a jpeg" * 10)
    (tmp_path / "images" / "1011.jpg").write_bytes(b"")
    jpeg(tmp_path / "images" / "1002.jpg", size=(40, 30), orientation=6)  # stored landscape, shown portrait
    splits = scan_images(read_ava(tmp_path, val_size=0))
    assert splits.test.ids == ["1000", "1002"]
    assert splits.test.sizes.tolist() == [[40, 30], [30, 40]]
    assert len(splits.train) == 37 - 2 - 0  # 40 ids, 3 in the test list, 2 broken files
    assert splits.report.dropped["image file missing"] == 1
    assert sum(v for k, v in splits.report.dropped.items() if k.startswith("unreadable image")) == 2
    lines = "\n".join(splits.report.lines(splits))
    assert "skipped 1 (image file missing), e.g. 1001.jpg" in lines and "test 2" in lines


def test_limit_keeps_at_most_n_per_split(tmp_path: Path) -> None:
    write_ava(tmp_path, 50, test_ids=list(range(1000, 1020)))
    splits = limit_splits(read_ava(tmp_path), 7, seed=0)
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [7, 3, 7]
    # The report says which splits the limit cut (val had 3, so not val), and from how many.
    before = read_ava(tmp_path)
    assert splits.report.cut_by_limit == {"train": len(before.train), "test": 20}
    assert "--limit kept train 7 of" in "\n".join(splits.report.lines(splits))
    # A limit the data does not reach cuts nothing, and the report says no cut.
    roomy = limit_splits(read_ava(tmp_path), 1000, seed=0)
    assert [len(s) for s in (roomy.train, roomy.test)] == [len(before.train), 20]
    assert roomy.report.cut_by_limit == {} and "--limit" not in "\n".join(roomy.report.lines(roomy))


# -- AADB -------------------------------------------------------------------------------------------


def flickr_url(farm: int, server: int, name: str) -> str:
    return f"http://farm{farm}.staticflickr.com/{server}/{name}.jpg"


def write_aadb(root: Path, ratings: dict[str, list[int]], parts: dict[str, list[str]]) -> None:
    """The release layout: label lists, Mechanical Turk results and original-size images."""
    labels = root / "imgListFiles_label"
    labels.mkdir(parents=True)
    for part, names in parts.items():
        (labels / f"imgList{part}Regression_score.txt").write_text("".join(f"{n} 0.5\n" for n in names))
        for a, attribute in enumerate(ATTRIBUTES):
            lines = "".join(f"{n} {(a + i) / 20 - 0.4:.2f}\n" for i, n in enumerate(names))
            (labels / f"imgList{part}Regression_{attribute}.txt").write_text(lines)
    for k, name in enumerate(ratings):
        jpeg(root / "datasetImages_originalSize" / name, seed=k)
    # each worker's task rates up to 10 images (slots 1..10); spread one image's ratings over tasks
    tasks: list[dict[str, str]] = []
    for name, scores in ratings.items():
        farm, server, base = name.split("_", 2)
        url = flickr_url(int(farm.removeprefix("farm")), int(server), base.removesuffix(".jpg"))
        for t, score in enumerate(scores):
            while len(tasks) <= t:
                tasks.append({})
            slot = sum(1 for key in tasks[t] if key.startswith("Input.image_url")) + 1
            tasks[t][f"Input.image_url{slot}"] = url
            tasks[t][f"Answer.overallScore{slot}"] = str(score)
    columns = [f"Input.image_url{k}" for k in range(1, 11)] + [f"Answer.overallScore{k}" for k in range(1, 11)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["HITId", *columns])
    writer.writeheader()
    for t, task in enumerate(tasks):
        writer.writerow({"HITId": f"hit{t}", **task})
    (root / "AADB_AllinAll.csv").write_text(buffer.getvalue())


def test_aadb_image_names_follow_the_flickr_url() -> None:
    url = "http://farm4.staticflickr.com/3701/9488154346_2c2ee1f0a3_b.jpg"
    assert image_name_from_url(url) == "farm4_3701_9488154346_2c2ee1f0a3_b.jpg"
    with pytest.raises(ValueError):
        image_name_from_url("not a url")


def test_aadb_reads_distributions_attributes_and_drops_single_ratings(tmp_path: Path) -> None:
    names = [f"farm{1 + i % 3}_{100 + i}_{5000 + i}_abc_b.jpg" for i in range(8)]
    ratings = {name: [1 + (i + k) % 5 for k in range(5)] for i, name in enumerate(names)}
    ratings[names[2]] = [4]  # a single rating: dropped
    ratings[names[3]] = [5, 5, 2, 9]  # 9 is outside 1..5: ignored and reported
    write_aadb(
        tmp_path,
        ratings,
        {"Train": names[:4], "Validation": names[4:5], "Test": names[5:7], "TestNew": names[5:6]},
    )
    splits = read_aadb(tmp_path)
    assert splits.train.ids == [names[0], names[1], names[3]]
    assert splits.val.ids == [names[4]] and splits.test.ids == names[5:7]
    np.testing.assert_array_equal(splits.train.votes[2], [0, 1, 0, 0, 2])
    np.testing.assert_array_equal(splits.train.votes[0], [1, 1, 1, 1, 1])
    assert splits.train.attributes.shape == (3, 11)
    light, symmetry = ATTRIBUTES.index("Light"), ATTRIBUTES.index("Symmetry")
    assert splits.train.attributes[1, light] == pytest.approx(((light + 1) / 20 - 0.4 + 1) / 2)  # [-1, 1] -> [0, 1]
    assert splits.train.attributes[1, symmetry] == pytest.approx((symmetry + 1) / 20 - 0.4)  # already [0, 1]
    assert splits.report.dropped["fewer than 2 ratings"] == 1
    assert splits.report.dropped["rating outside 1..5 ignored"] == 1
    assert splits.train.paths[0] == tmp_path / "datasetImages_originalSize" / names[0]
    assert read_aadb(tmp_path, test_list="TestNew").test.ids == [names[5]]
    scanned = scan_images(splits)
    assert scanned.test.sizes.tolist() == [[40, 30], [40, 30]]


def test_aadb_needs_the_rating_file(tmp_path: Path) -> None:
    write_aadb(tmp_path, {"farm1_1_2_x_b.jpg": [3, 4]}, {"Train": ["farm1_1_2_x_b.jpg"]})
    (tmp_path / "AADB_AllinAll.csv").unlink()
    with pytest.raises(DatasetError, match="AllinAll"):
        read_aadb(tmp_path)


def small_aadb(root: Path) -> list[str]:
    """Three images rated twice each: two to train, one to validate and test."""
    names = [f"farm1_{100 + i}_{5000 + i}_abc_b.jpg" for i in range(3)]
    write_aadb(root, {n: [3, 4] for n in names}, {"Train": names[:2], "Validation": names[2:], "Test": names[2:]})
    return names


@pytest.mark.parametrize("bad", ["foo.jpg notanumber", "foo.jpg", "foo.jpg nan"])
def test_aadb_refuses_a_damaged_label_list_naming_file_and_line(tmp_path: Path, bad: str) -> None:
    """The split is the benchmark's: a line that cannot be read stops the read, never drops an image."""
    names = small_aadb(tmp_path)
    score_list = tmp_path / "imgListFiles_label" / "imgListTrainRegression_score.txt"
    score_list.write_text(f"{names[0]} 0.5\n{names[1]} 0.5\n\n{bad}\n")
    with pytest.raises(DatasetError, match=re.escape(f"imgListTrainRegression_score.txt:4: '{bad}' is not")):
        read_aadb(tmp_path)


def test_aadb_names_the_rating_columns_that_are_missing(tmp_path: Path) -> None:
    small_aadb(tmp_path)
    ratings = tmp_path / "AADB_AllinAll.csv"
    ratings.write_text(ratings.read_text().replace("Answer.overallScore", "Answer.comment"))
    with pytest.raises(DatasetError, match=r"has no Answer\.overallScore1, .*Answer\.overallScore10 column"):
        read_aadb(tmp_path)


def test_train_reports_a_damaged_aadb_list_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from aesthete.cli import app

    root = tmp_path / "AADB"
    small_aadb(root)
    (root / "imgListFiles_label" / "imgListTestRegression_score.txt").write_text("x.jpg notanumber\n")
    recipe = tmp_path / "mine.toml"
    recipe.write_text('model = "nima"\ndataset = "aadb"\n[model_config]\nbins = 5\nbackbone = "resnet18"\n')
    result = CliRunner().invoke(
        app,
        ["train", "--recipe", str(recipe), "--data-root", str(root), "--output", str(tmp_path / "run"),
         "--no-pretrained", "--device", "cpu", "--workers", "0"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "imgListTestRegression_score.txt:1: 'x.jpg notanumber'" in lines[0], result.output


# -- the data pipeline ------------------------------------------------------------------------------


def test_training_and_evaluation_shapes_follow_the_policy() -> None:
    from aesthete.training.data import Augment, eval_shape, train_shape, train_view

    rng = np.random.default_rng(0)
    photo = Image.fromarray(np.zeros((300, 500, 3), dtype=np.uint8))
    augment = Augment(scale=1.05, patches=3, bucket_step=32)
    warp = InputPolicy(resize="warp", size=64)
    assert train_shape(warp, augment, 500, 300) == eval_shape(warp, 500, 300) == (64, 64)
    assert train_view(photo, warp, augment, rng).shape == (64, 64, 3)
    short = InputPolicy(resize="short_side", size=100, max_long_side=200)
    assert eval_shape(short, 500, 300) == (100, 167)
    assert train_shape(short, augment, 500, 300) == (100, 160)  # longer side cropped to a multiple of 32
    assert train_shape(short, augment, 300, 500) == (160, 100)
    assert train_shape(short, augment, 1000, 200) == (32, 192)  # a panorama: shrunk to 200x40, then cropped
    assert train_view(photo, short, augment, rng).shape == (100, 160, 3)
    patch = InputPolicy(resize="short_side", size=100, patch=64)
    assert train_shape(patch, augment, 500, 300) == (3, 64, 64)
    assert train_view(photo, patch, augment, rng).shape == (3, 64, 64, 3)
    assert eval_shape(patch, 500, 300) == patch.prepare(photo).shape[:3]
    crop = InputPolicy(resize="center_crop", size=48, resize_short=64)
    assert train_view(photo, crop, augment, rng).shape == (48, 48, 3)


def test_augmentation_depends_only_on_seed_epoch_and_photo(tmp_path: Path) -> None:
    from aesthete.training.data import Augment, PhotoDataset

    write_ava(tmp_path, 12, test_ids=[1000])
    split = scan_images(read_ava(tmp_path, val_size=0)).train
    policy = InputPolicy(resize="warp", size=24)
    dataset = PhotoDataset(split, policy, augment=Augment(scale=1.3), seed=5)
    first = dataset[(3, 0)]["images"]
    assert first.shape == (3, 24, 24) and first.dtype.is_floating_point is False
    assert (dataset[(3, 0)]["images"] == first).all()
    assert any(not (dataset[(3, epoch)]["images"] == first).all() for epoch in range(1, 5))
    assert dataset[(3, 0)]["aspect"] == pytest.approx(40 / 30)
    evaluation = PhotoDataset(split, policy)
    expected = policy.prepare(Image.open(split.paths[3]).convert("RGB"))
    assert (evaluation[3]["images"].permute(1, 2, 0).numpy() == expected).all()
    split.paths[4].write_bytes(split.paths[4].read_bytes()[:200])  # truncated after the scan
    assert evaluation[4] is None


def test_plan_keeps_the_global_batch_for_any_number_of_processes() -> None:
    from aesthete.training.data import plan_epoch

    groups = np.array([0] * 23 + [1] * 9)

    def steps(world: int, rank: int, micro: int = 0) -> list:
        return plan_epoch(groups, global_batch=5, world=world, rank=rank, micro_batch=micro, seed=1, epoch=2)

    single = steps(1, 0)
    assert sorted(s.global_size for s in single) == [3, 4, 5, 5, 5, 5, 5]  # 23 = 5+5+5+5+3 and 9 = 5+4
    for world, micro in ((2, 0), (3, 1), (2, 2)):
        per_rank = [steps(world, rank, micro) for rank in range(world)]
        assert all(len(p) == len(single) for p in per_rank)
        for i, step in enumerate(single):
            union = sorted(key for p in per_rank for micro_batch in p[i].micro for key in micro_batch)
            assert union == sorted(key for micro_batch in step.micro for key in micro_batch)
            assert all(p[i].global_size == step.global_size for p in per_rank)
            if micro:
                assert all(len(mb) <= micro for p in per_rank for mb in p[i].micro)
    for step in single:
        assert len({int(groups[index]) for index, _ in step.micro[0]}) == 1  # a batch never mixes shapes
    assert steps(1, 0)[0].micro == single[0].micro  # seeded
    assert (
        plan_epoch(groups, global_batch=5, world=1, rank=0, micro_batch=0, seed=1, epoch=3)[0].micro != single[0].micro
    )


def test_weighted_shares_give_the_global_mean_gradient() -> None:
    """The trainer's loss weighting: processes' gradients, averaged as DDP does, equal one process's."""
    import torch

    from aesthete.training.data import plan_epoch

    torch.manual_seed(0)
    inputs, targets = torch.randn(7, 4), torch.randn(7)
    weight = torch.randn(4, requires_grad=True)

    def gradient(keys: list[int], share_weight: float) -> torch.Tensor:
        weight.grad = None
        loss = ((inputs[keys] @ weight - targets[keys]) ** 2).mean()
        (loss * share_weight).backward()
        return weight.grad.clone()

    full = gradient(list(range(7)), 1.0)
    world = 3
    total = torch.zeros(4)
    for rank in range(world):
        (step,) = plan_epoch(
            np.zeros(7, dtype=int), global_batch=7, world=world, rank=rank, micro_batch=2, seed=0, epoch=0
        )
        for micro in step.micro:
            keys = [index for index, _ in micro]
            total += gradient(keys, len(keys) * world / step.global_size)
    torch.testing.assert_close(total / world, full)
    assert math.isclose(float(total.norm()), float((full * world).norm()), rel_tol=1e-5)
