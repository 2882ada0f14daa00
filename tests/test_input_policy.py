"""Input policies: sizes, caps, patch grids and cache keys."""

from __future__ import annotations

import numpy as np
from PIL import Image

from aesthete.input_policy import InputPolicy


def test_warp_ignores_aspect() -> None:
    policy = InputPolicy(resize="warp", size=300)
    assert policy.resized_size(6000, 4000) == (300, 300)
    assert policy.prepare(Image.new("RGB", (90, 30))).shape == (300, 300, 3)


def test_short_side_keeps_aspect_and_caps_panoramas() -> None:
    policy = InputPolicy(resize="short_side", size=500, max_long_side=1000)
    assert policy.resized_size(6000, 4000) == (750, 500)
    assert policy.resized_size(4000, 6000) == (500, 750)
    width, height = policy.resized_size(20000, 10)  # a strip: shrink, never warp
    assert width == 1000 and height == 1
    assert policy.prepare(Image.new("RGB", (300, 200))).shape == (500, 750, 3)


def test_center_crop() -> None:
    policy = InputPolicy(resize="center_crop", size=224, resize_short=256)
    pixels = np.zeros((400, 600, 3), np.uint8)
    pixels[:, 300:] = 255  # right half white: the centre crop straddles the edge evenly
    out = policy.prepare(Image.fromarray(pixels))
    assert out.shape == (224, 224, 3)
    assert abs(int(out[:, :112].mean()) - 0) < 5 and abs(int(out[:, 112:].mean()) - 255) < 5


def test_patches_cover_the_whole_image_deterministically() -> None:
    policy = InputPolicy(resize="short_side", size=256, patch=224)
    origins = policy.patch_origins(384, 256)
    assert origins == [(0, 0), (0, 160), (32, 0), (32, 160)]
    covered = np.zeros((256, 384), bool)
    for y, x in origins:
        covered[y : y + 224, x : x + 224] = True
    assert covered.all()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8))
    first, second = policy.prepare(image), policy.prepare(image)
    assert first.shape == (4, 224, 224, 3) and np.array_equal(first, second)


def test_key_tracks_every_field_and_round_trips() -> None:
    base = InputPolicy(resize="warp", size=300)
    assert base.key == "warp-300-v1"
    assert len({base.key, InputPolicy(resize="warp", size=224).key, InputPolicy(resize="warp", size=300, version=2).key,
                InputPolicy(resize="warp", size=300, mean=(0.5, 0.5, 0.5)).key}) == 4  # fmt: skip
    policy = InputPolicy(resize="short_side", size=256, max_long_side=768, patch=224)
    assert InputPolicy.from_dict(policy.to_dict()) == policy


def test_input_shape_is_what_prepare_makes() -> None:
    policies = [
        InputPolicy(resize="warp", size=30),
        InputPolicy(resize="short_side", size=38, max_long_side=60),
        InputPolicy(resize="center_crop", size=22, resize_short=26),
        InputPolicy(resize="short_side", size=26, patch=22),
    ]
    for policy in policies:
        for size in ((90, 60), (60, 90), (1, 1), (16, 9), (650, 1)):
            assert policy.input_shape(*size) == policy.prepare(Image.new("RGB", size)).shape, (policy, size)


def test_a_long_strip_is_refused_where_the_policy_would_make_it_huge() -> None:
    topiq = InputPolicy(resize="short_side", size=384)  # no longer-side cap: TOPIQ's published input
    assert topiq.too_elongated(6000, 4000) is None
    assert topiq.too_elongated(12000, 1000) is None  # a 12:1 panorama: 4608x384, 1.8 MP
    assert topiq.too_elongated(1000, 12000) is None
    reason = topiq.too_elongated(65000, 100)
    assert reason == "65000x100 would make a 249600x384 input for the model (95.8 MP; at most 2.5 MP)"
    mp_ada = InputPolicy(resize="short_side", size=256, patch=224)
    assert mp_ada.too_elongated(12000, 1000) is None  # 28 patches
    assert mp_ada.too_elongated(65000, 100) == (
        "65000x100 would make 1486 patches of 224x224 for the model (74.6 MP; at most 2.5 MP)"
    )
    # A longer-side cap shrinks a strip's shorter side instead: below 32 px the model sees a line.
    saf = InputPolicy(resize="short_side", size=256, max_long_side=512)
    assert saf.too_elongated(12000, 1000) is None  # 512x43
    assert (
        saf.too_elongated(65000, 100)
        == "65000x100 would make a 512x1 input for the model (its shorter side under 32 px)"
    )
    assert (
        saf.too_elongated(100, 65000)
        == "100x65000 would make a 1x512 input for the model (its shorter side under 32 px)"
    )
    # Policies whose input is bounded by construction never refuse a photo for its shape, nor does a policy
    # smaller than the floor (the tests' tiny models).
    for bounded in (
        InputPolicy(resize="warp", size=300),
        InputPolicy(resize="warp", size=16),
        InputPolicy(resize="center_crop", size=224, resize_short=256),
        InputPolicy(resize="short_side", size=16),
    ):
        assert bounded.too_elongated(65000, 16) is None and bounded.too_elongated(16, 65000) is None
