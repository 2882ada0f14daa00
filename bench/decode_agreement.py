"""Scores through aesthete's own decode path against the same model on the reference-size tensor.

    python bench/decode_agreement.py [--photos N] [--size 1600x1067] [--only ENTRY]

``score`` decodes a large JPEG at a reduced size (libjpeg's DCT scaling: 1/2, 1/4 or 1/8, the smallest
that still covers the model's input) before the input policy resizes it; the publishers' code decodes the
full image and resizes that. Both end in a tensor of the model's input size, and they differ only by
what reduced-size decoding does to the pixels. This measures what that costs each published model:
Spearman's rank correlation between the two paths' scores over the same photos, and the mean and
largest absolute difference of the score (a distribution's mean on 1-10, or LAION's score).

The reference path: ``decode(data)`` at full size, then ``InputPolicy.prepare``. aesthete's path:
``decode(data, target=decode_target(policy))`` (what the decode workers do), then the same ``prepare``.
Weights are freshly initialised with the last layer scaled up so that scores differ between photos as a
trained head's do (no real checkpoint can be downloaded here): the figures measure the decode path's
effect on a network of the published shape, not on the published weights.
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's aesthete and bench

from aesthete.decode import decode  # noqa: E402
from aesthete.decode_worker import decode_target  # noqa: E402

# The published checkpoints' architectures (configs as aesthete/convert.py's recipes write them) and the
# gain on each last layer (see the module docstring).
PUBLISHED: dict[str, tuple[str, dict[str, Any], float]] = {
    "topiq-iaa-r50-ava": ("topiq-iaa", {}, 3.0),
    "nima-vgg16-ava": ("nima", {"nima_vgg16_pyiqa": True}, 10.0),
    "laion-aesthetic-v2": ("laion-aesthetic", {}, 50.0),
}


def build(arch: str, config: dict[str, Any], gain: float, seed: int = 0) -> Any:
    import torch

    from aesthete.models import get_model
    from aesthete.models.nima import NIMA_VGG16_PYIQA

    if config.pop("nima_vgg16_pyiqa", False):
        config = {**NIMA_VGG16_PYIQA, **config}
    torch.manual_seed(seed)
    model = get_model(arch, **config).eval()
    with torch.no_grad():
        [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1].weight.mul_(gain)
    return model


def scores(model: Any, jpegs: Sequence[bytes], *, reduced: bool) -> np.ndarray:
    """Each photo's score (a distribution's mean, or the model's one score), fp32 on the CPU."""
    import torch

    from aesthete.devices import normalise

    policy, out = model.policy, []
    target = decode_target(policy) if reduced else None
    for data in jpegs:
        pixels = policy.prepare(decode(data, target=target).image)
        x = normalise(torch.from_numpy(np.array(pixels)).permute(2, 0, 1).unsqueeze(0), policy.mean, policy.std,
                      channels_last=False)  # fmt: skip
        with torch.no_grad():
            result = model(x, torch.tensor([1.5]))
        if model.output == "score":
            out.append(float(result["score"][0]))
        else:
            out.append(float(result["probs"][0] @ model.bin_values))
    return np.array(out)


def agreement(model: Any, jpegs: Sequence[bytes]) -> dict[str, float]:
    """Spearman's rho, mean and largest absolute difference between the reference and aesthete's path."""
    from scipy.stats import spearmanr

    reference = scores(model, jpegs, reduced=False)
    ours = scores(model, jpegs, reduced=True)
    difference = np.abs(ours - reference)
    return {
        "spearman": float(spearmanr(reference, ours).statistic),
        "mean_abs_diff": float(difference.mean()),
        "max_abs_diff": float(difference.max()),
        "score_std": float(reference.std()),
        "photos": len(jpegs),
    }


def photos(count: int, size: tuple[int, int], quality: int = 90) -> list[bytes]:
    """Generated scenes (tests/imagegen.py: shapes, gradients, texture) saved as JPEGs."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import imagegen

    out = []
    for seed in range(count):
        buffer = io.BytesIO()
        imagegen.scene(seed, size).save(buffer, "JPEG", quality=quality)
        out.append(buffer.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=24)
    parser.add_argument("--size", default="1600x1067", help="WIDTHxHEIGHT of the generated JPEGs")
    parser.add_argument("--only", help="one entry name")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    jpegs = photos(args.photos, (width, height))
    print("| checkpoint | photos | Spearman | mean abs diff | max abs diff | score std |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (arch, config, gain) in PUBLISHED.items():
        if args.only and name != args.only:
            continue
        row = agreement(build(arch, dict(config), gain), jpegs)
        print(
            f"| {name} | {row['photos']} | {row['spearman']:.4f} | {row['mean_abs_diff']:.4f} "
            f"| {row['max_abs_diff']:.4f} | {row['score_std']:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
