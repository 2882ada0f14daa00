"""Rank agreement between aesthete's reduced-size decode path and the reference (full decode, then the
same resize) for the published checkpoints' architectures, at small configs on generated JPEGs large
enough that libjpeg's DCT scaling is used (bench/decode_agreement.py measures the full-size models)."""

from __future__ import annotations

import pytest

from aesthete.decode import decode
from aesthete.decode_worker import decode_target
from bench.decode_agreement import agreement, build, photos

SMALL = {
    "topiq-iaa": ({"inter_dim": 64, "heads": 2, "input_size": 64}, 3.0),
    "nima-vgg16": (
        {"nima_vgg16_pyiqa": True, "input_size": 64, "resize_short": 64},
        10.0,
    ),
    "laion-aesthetic": ({"width": 64, "layers": 2, "heads": 2, "patch": 16, "image_size": 64, "embed_dim": 32}, 50.0),
}
ARCH = {"topiq-iaa": "topiq-iaa", "nima-vgg16": "nima", "laion-aesthetic": "laion-aesthetic"}


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    return photos(12, (2048, 1365))


@pytest.mark.parametrize("case", sorted(SMALL))
def test_reduced_decoding_keeps_the_ranking(case: str, jpegs: list[bytes]) -> None:
    config, gain = SMALL[case]
    model = build(ARCH[case], dict(config), gain)
    # The reduced path really is reduced here (else the test would compare a path with itself).
    reduced = decode(jpegs[0], target=decode_target(model.policy)).image
    assert reduced.width <= 1024
    row = agreement(model, jpegs)
    assert row["score_std"] > 5 * row["mean_abs_diff"], row
    assert row["spearman"] > 0.95, row
