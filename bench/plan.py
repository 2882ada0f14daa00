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


# The models of the eager-vs-compiled rows: (label, architecture, config). ResNet-50@300 (nima's and
# hla-gcn's trunk) everywhere; the published architectures (freshly initialised: speed does not depend on
# the weights) only where they run cheaply, on a GPU: on 2 CPU cores CLIP ViT-L/14 alone takes minutes.
COMPILE_CPU = (("nima ResNet-50@300", "nima", {}), ("hla-gcn ResNet-50@300", "hla-gcn", {}))
COMPILE_GPU = (  # hla-gcn left out: its trunk is nima's, and each model's compilation costs a minute there
    COMPILE_CPU[0],
    ("topiq-iaa ResNet-50, short side 384", "topiq-iaa", {}),
    ("laion-aesthetic CLIP ViT-L/14@224", "laion-aesthetic", {}),
)


@dataclass(frozen=True)
class Plan:
    sizes: tuple[Size, ...]
    rescans: tuple[int, int]
    rss: tuple[int, int]
    repeats: int  # end-to-end runs per photo set (the fastest counts: noise only ever slows a run)
    model_seconds: float
    compile_models: tuple[tuple[str, str, dict], ...] = COMPILE_CPU
    handback_photos: int = 6_000  # model inputs handed back from the workers, per way (bench.stages.handback)
    # Photo sizes also run end to end with `score --compile on`, next to a compiled model-only figure (issue 16:
    # the end-to-end targets against the compiled model's stage-sum limit), each run `compiled_repeats` times:
    # loading the compiled code from the inductor cache takes ~7 s a run, give or take 2 (freezing keeps
    # inductor's FX graph cache out: "mkldnn tensors unpickleable"), against 4-9 s of photos between the runs.
    compiled_e2e: tuple[str, ...] = ()
    compiled_repeats: int = 4


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
    compiled_e2e=("0.2 MP", "24 MP"),
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
    compile_models=(("nima ResNet-18@64 (smoke)", "nima", TINY),),  # compiles in seconds: a smoke run
    handback_photos=500,
    compiled_e2e=("0.2 MP",),
    compiled_repeats=1,
)
# --device cuda on an H100 or H200 with 16 cores: many more 0.2-MP photos, so that the photos between the
# two end-to-end runs (38,000) take longer than the ~15 s start-up, whose ~3 s spread from run to run made
# the 12,000-photo figures of the first H200 run uncertain by tens of percent; enough 24-MP ones for the
# ~200 img/s decode ceiling; no 12-MP or RAW rows (the 24-MP row bounds them), and run.py skips the
# CPU-only rows (rescans, RSS, start-up) with --gpu-only.
CUDA = Plan(
    sizes=(
        Size("0.2 MP", 548, 365, count=40_000, head=2_000, decode_count=256, naive_count=32),
        Size("24 MP", 6000, 4000, count=480, head=96, decode_count=32, naive_count=8),
    ),
    rescans=(1_000, 5_000),
    rss=(100, 400),
    repeats=2,
    model_seconds=3.0,
    compile_models=COMPILE_GPU,
    handback_photos=20_000,
)
