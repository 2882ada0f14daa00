"""HLA-GCN's two variants under SGD and Adam on the synthetic blur set (docs/training.md, "Proof of learning").

For each (variant, optimiser) pair: a ResNet-18 trunk from random weights, 64 px warps, the model's own
EMD loss, a fixed number of steps; the standard deviation of each head's logits is printed as training
goes (the collapse of the paper variant under Adam shows as this scale exploding), then the held-out
test SRCC of the mean score. CPU only, deterministic for a given seed and thread count.

    python bench/hla_gcn_probe.py DATA --steps 120      # DATA from `python -m aesthete.training.synthetic`
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.stats import spearmanr

from aesthete.models import get_model

MEAN = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)


def load(root: Path, size: int) -> dict[str, torch.Tensor]:
    """AVA.txt + images/ -> warped pixels, aspect ratios w/h, vote distributions, test mask."""
    test_ids = set((root / "aesthetics_image_lists" / "generic_test.jpgl").read_text().split())
    images, aspects, dists, is_test = [], [], [], []
    for line in (root / "AVA.txt").read_text().splitlines():
        fields = line.split()
        with Image.open(root / "images" / f"{fields[1]}.jpg") as im:
            aspects.append(im.width / im.height)
            warped = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32)
        images.append(torch.from_numpy(warped).permute(2, 0, 1) / 255.0)
        counts = np.array(fields[2:12], dtype=np.float32)
        dists.append(torch.from_numpy(counts / counts.sum()))
        is_test.append(fields[1] in test_ids)
    return {
        "images": (torch.stack(images) - MEAN) / STD,
        "aspect": torch.tensor(aspects),
        "dist": torch.stack(dists),
        "test": torch.tensor(is_test),
    }


def mean_score(probs: torch.Tensor) -> np.ndarray:
    return (probs * torch.arange(1, probs.shape[-1] + 1)).sum(-1).numpy()


def run(data: dict[str, torch.Tensor], variant: str, optimiser: str, steps: int, batch: int, seed: int) -> None:
    torch.manual_seed(seed)
    model = get_model("hla-gcn", variant=variant, backbone="resnet18", input_size=64, channels=64)
    if optimiser == "sgd":  # the released recipe's optimiser (Nesterov, wd 1e-4) at its lr
        opt: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4
        )
    else:
        opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    train_idx = torch.nonzero(~data["test"]).flatten()
    generator = torch.Generator().manual_seed(seed)
    scales = []
    start = time.monotonic()
    for step in range(1, steps + 1):
        pick = train_idx[torch.randint(len(train_idx), (batch,), generator=generator)]
        model.train()
        out = model(data["images"][pick], data["aspect"][pick])
        loss = model.loss(out, {"dist": data["dist"][pick]})
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step == 1 or step % (steps // 6) == 0:
            sc = out["logits_coordinate"].detach().std().item()
            sl = out["logits_latent"].detach().std().item()
            scales.append(f"{step}:{sc:.3g}/{sl:.3g}")
    model.eval()
    test = data["test"]
    with torch.no_grad():
        probs = torch.cat([
            model(data["images"][test][i : i + 64], data["aspect"][test][i : i + 64])["probs"]
            for i in range(0, int(test.sum()), 64)
        ])  # fmt: skip
    srcc = spearmanr(mean_score(probs), mean_score(data["dist"][test])).statistic
    spread = float(mean_score(probs).std())
    print(
        f"{variant:8s} {optimiser:4s} final loss {loss.item():.4f}  test SRCC {srcc:.4f}  "
        f"score std {spread:.3f}  ({time.monotonic() - start:.0f} s)\n"
        f"    logit std coordinate/latent by step: {'  '.join(scales)}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", default="official,paper")
    parser.add_argument("--optimisers", default="sgd,adam")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steady on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load(args.data, 64)
    print(f"{int((~data['test']).sum())} train, {int(data['test'].sum())} test photos", flush=True)
    for variant in args.variants.split(","):
        for optimiser in args.optimisers.split(","):
            run(data, variant, optimiser, args.steps, args.batch, args.seed)


if __name__ == "__main__":
    main()
