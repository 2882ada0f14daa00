"""Time and compare personal-model fits: ``python bench/personal.py [--photos 10000] [--dim 2048]``.

Synthetic features stand in for stored embeddings (float16, like the store keeps them) plus the seven
signal features: a photographer's taste is a hidden linear direction in a low-rank embedding space, the
stars are that taste quantised into 0-5 with label noise, and a "base model" score is a noisier view of
the same taste. Two parts:

1. ``time``: one ridge fit and the full 5-fold cross-validation on ``--photos`` x ``--dim`` features,
   wall-clock seconds (what ``learn`` will cost), with the machine's load average beside them. Last
   measured (docs/personal.md, "Time"): 10,000 x 2,055 on the 2-core machine, quiet (load 1.0-1.6),
   fit 2.4 s and CV 10.1 s (before the eigendecomposition path: 5.3 s and 27.5 s); at load 4-5, fit
   3.5 s and CV 17.3 s with OPENBLAS_NUM_THREADS=1 (6.1 s and 43.5 s with 2 threads, which wait on each
   other under load); before, 7.6 s and 41.2 s (14.8 s and 69.5 s).
2. ``compare`` (``--compare``): ridge, ordinal and pairwise heads on a smaller set (the pairwise one
   materialises 20 pairs per photo), 5-fold SRCC and pairwise accuracy and fit time, for the method
   choice recorded in docs/personal.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from aesthete import personal  # noqa: E402


def synthetic(n: int, dim: int, seed: int = 0, rank: int = 64, noise: float = 0.6):
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, rank))
    embeddings = factors @ rng.normal(size=(rank, dim)) / np.sqrt(rank) + 0.3 * rng.normal(size=(n, dim))
    embeddings = embeddings.astype(np.float16)
    taste = factors @ rng.normal(size=rank)
    taste = (taste - taste.mean()) / taste.std()
    stars = np.digitize(taste + noise * rng.normal(size=n), [-1.6, -0.9, -0.2, 0.5, 1.2]).astype(np.float64)
    base = taste + 1.5 * rng.normal(size=n)  # the generic model: right on average, far noisier
    signals = rng.normal(size=(n, len(personal.SIGNAL_FEATURES))).astype(np.float32)
    return np.hstack([signals, embeddings.astype(np.float32)]), stars, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--compare", action="store_true", help="also compare the three methods")
    parser.add_argument("--compare-photos", type=int, default=3000)
    parser.add_argument("--compare-dim", type=int, default=512)
    args = parser.parse_args()
    # The machine's load changes what a wall-clock time means: print it beside the times.
    print(f"cpus {os.cpu_count()}, numpy {np.__version__}, load average {os.getloadavg()[0]:.1f} (1 min)")
    x, y, base = synthetic(args.photos, args.dim)
    start = time.perf_counter()
    head = personal.fit_head(x, y)
    fit = time.perf_counter() - start
    start = time.perf_counter()
    cv = personal.cross_validate(x, y, baseline=base)
    cv_time = time.perf_counter() - start
    print(
        f"ridge {args.photos} x {x.shape[1]}: fit {fit:.1f} s, 5-fold CV {cv_time:.1f} s (penalty {head.penalty:.3g})"
    )
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) after the fits")
    for row in cv.table():
        print(f"  {row['model']:<10} SRCC {row['srcc']:.3f} ± {row['srcc_sd']:.3f}   "
              f"pairwise {row['pairwise']:.3f} ± {row['pairwise_sd']:.3f}")  # fmt: skip
    if args.compare:
        x, y, base = synthetic(args.compare_photos, args.compare_dim, seed=1)
        print(f"compare on {args.compare_photos} x {x.shape[1]}:")
        for method in personal.METHODS:
            start = time.perf_counter()
            cv = personal.cross_validate(x, y, method=method)
            took = time.perf_counter() - start
            row = cv.table()[0]
            print(f"  {method:<9} SRCC {row['srcc']:.3f} ± {row['srcc_sd']:.3f}   "
                  f"pairwise {row['pairwise']:.3f} ± {row['pairwise_sd']:.3f}   5-fold {took:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
