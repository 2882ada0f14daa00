"""What the benchmark measures: the model, the photo sizes and counts of the full run and of ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass

MODEL = "nima"  # ResNet-50 at 300x300: the backbone of nima and hla-gcn
TINY = {"backbone": "resnet18", "input_size": 64}  # for the memory runs: 10,000 photos in seconds, not minutes
SMALL = (160, 120)  # the memory runs' photos
RAW_LABEL = "RAW previews"


@dataclass(frozen=True)
class Size:
    label: str
    width: int
    height: int
    count: int  # photos in the long end-to-end run
    head: int  # photos in the short one: the difference cancels the fixed start-up cost
    decode_count: int  # photos per decode-only measurement
    naive_count: int  # 0: no naive pipeline (a RAW's naive decode would be a demosaic of its raw data)
    raw: bool = False  # DNGs holding JPEGs of this size as their previews


@dataclass(frozen=True)
class Plan:
    sizes: tuple[Size, ...]
    rescans: tuple[int, int]
    rss: tuple[int, int]
    repeats: int  # end-to-end runs per photo set (the fastest counts: noise only ever slows a run)
    model_seconds: float


FULL = Plan(
    sizes=(
        Size("0.2 MP", 548, 365, count=480, head=96, decode_count=96, naive_count=24),
        Size("12 MP", 4000, 3000, count=120, head=24, decode_count=32, naive_count=8),
        Size("24 MP", 6000, 4000, count=120, head=24, decode_count=32, naive_count=8),
        Size(RAW_LABEL, 6000, 4000, count=120, head=24, decode_count=32, naive_count=0, raw=True),
    ),
    rescans=(10_000, 100_000),
    rss=(1_000, 10_000),
    repeats=2,
    model_seconds=5.0,
)
QUICK = Plan(
    sizes=(
        Size("0.2 MP", 548, 365, count=32, head=8, decode_count=16, naive_count=4),
        Size("12 MP", 4000, 3000, count=10, head=4, decode_count=4, naive_count=2),
        Size("24 MP", 6000, 4000, count=10, head=4, decode_count=4, naive_count=2),
        Size(RAW_LABEL, 6000, 4000, count=10, head=4, decode_count=4, naive_count=0, raw=True),
    ),
    rescans=(1_000, 5_000),
    rss=(100, 400),
    repeats=1,
    model_seconds=2.0,
)
