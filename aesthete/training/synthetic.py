"""A synthetic data set in AVA's release format whose votes are a known function of the pixels.

Each photo is a random pattern of coloured blocks and strokes blurred by a Gaussian of radius
``r`` drawn uniformly from [0, ``max_blur``]; its voters' mean score falls linearly with the blur, from 8
(sharp) to 2 (most blurred), and the ten vote counts are a multinomial draw from a discretised normal
around that mean. A model that learns to see blur ranks these photos; one that does not cannot. This
proves the training loop (data, loss, optimiser, evaluation), not aesthetics.

Written exactly as AVA is: ``AVA.txt`` (index, id, ten counts, two tags, challenge), ``images/<id>.jpg``
and ``aesthetics_image_lists/generic_test.jpgl`` with a ``test_fraction`` of the ids.

    python -m aesthete.training.synthetic OUT --n 600
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ((96, 72), (72, 96), (80, 80), (112, 64))  # landscape, portrait, square, wide
FIRST_ID = 100_000


def mean_score(blur: float, max_blur: float) -> float:
    """The ground-truth relation: 8 for a sharp photo down to 2 at ``max_blur``."""
    return 8.0 - 6.0 * blur / max_blur


def vote_counts(mu: float, voters: int, rng: np.random.Generator, spread: float = 1.2) -> np.ndarray:
    scores = np.arange(1, 11)
    weights = np.exp(-0.5 * ((scores - mu) / spread) ** 2)
    return rng.multinomial(voters, weights / weights.sum())


def pattern(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Sharp-edged random content: coloured blocks on a random background, plus thin strokes."""
    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(12, 24))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(4, width // 2)), y0 + int(rng.integers(4, height // 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
    for _ in range(int(rng.integers(6, 12))):
        points = [(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(2)]
        draw.line(points, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=1)
    return image


def generate(
    out: Path,
    *,
    n: int = 600,
    seed: int = 0,
    max_blur: float = 3.0,
    test_fraction: float = 0.2,
    voters: tuple[int, int] = (80, 250),
) -> Path:
    """Write ``n`` photos and their AVA files under ``out``; returns ``out``."""
    rng = np.random.default_rng(seed)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        image_id = FIRST_ID + i
        width, height = SHAPES[int(rng.integers(len(SHAPES)))]
        blur = float(rng.uniform(0.0, max_blur))
        photo = pattern(width, height, rng).filter(ImageFilter.GaussianBlur(radius=blur))
        photo.save(images / f"{image_id}.jpg", quality=95)
        counts = vote_counts(mean_score(blur, max_blur), int(rng.integers(*voters)), rng)
        tags = rng.integers(0, 67, 2)
        rows.append(f"{i + 1} {image_id} {' '.join(map(str, counts))} {tags[0]} {tags[1]} {int(rng.integers(1, 1500))}")
    (out / "AVA.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    lists = out / "aesthetics_image_lists"
    lists.mkdir(exist_ok=True)
    test_ids = sorted(rng.choice(n, size=round(n * test_fraction), replace=False) + FIRST_ID)
    (lists / "generic_test.jpgl").write_text("".join(f"{t}\n" for t in test_ids), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write the data set into")
    parser.add_argument("--n", type=int, default=600, help="number of photos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-blur", type=float, default=3.0, help="largest Gaussian blur radius, in pixels")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="share of ids in generic_test.jpgl")
    args = parser.parse_args(argv)
    generate(args.out, n=args.n, seed=args.seed, max_blur=args.max_blur, test_fraction=args.test_fraction)
    print(f"wrote {args.n} photos in AVA's format to {args.out}")


if __name__ == "__main__":
    main()
