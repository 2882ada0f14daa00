"""Score folders: discover -> compare with the cache -> decode in workers -> batch -> model -> store.

The order matters for speed. Unchanged files are recognised from (path, size, mtime) alone, before
any file is opened, and this module plans with no image library: a rescan with nothing new loads neither
numpy nor Pillow. Only a run with files to read imports :mod:`aesthete.pipeline`, which decodes them in
worker processes and runs the model (torch is imported when the first photo needs it).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from aesthete import faces, interrupts
from aesthete.architectures import DEFAULT_MODEL, check_architecture
from aesthete.devices import check_compile_mode, check_run_options
from aesthete.discover import FoundFile, discover, pair_raws
from aesthete.input_policy import InputPolicy
from aesthete.jobs import FILL_FACES, FILL_SIGNALS, FileJob
from aesthete.paths import Paths, is_within, path_list
from aesthete.signals import VERSION as SIGNALS_VERSION
from aesthete.store import KnownFile, ModelKey, Store, file_row, path_key

# --compile auto: compile when the photos to score repay the compilation twice over. Per model and precision,
# as measured with inductor's freezing in effect, batch 8, channels-last, 2 threads, eager and compiled timed
# in turns (BENCHMARKS.md "Compiled inference"): (device, precision, architecture, backbone) -> (saving s a
# photo, compilation s with an empty inductor cache, with a warm one). fp32: the AVX2-only 2-core AMD EPYC
# (no native bf16), 2026-11-27 22:31-22:59 UTC. bf16-amx (bf16 autocast on a CPU with AMX, which
# pipeline.load_runner tells apart): a 2-core Intel Xeon with AMX-BF16, 2026-11-29 14:06-14:16 UTC. A model
# or precision without an entry stays eager under auto: bf16 on an AVX512-BF16 CPU without AMX (its figures
# were taken while freezing silently did not happen: a different compiled program), and CUDA (compiled
# ResNet-50 was 1.54x on an H100, but score is decode-bound there). The savings are single runs on a
# machine whose speed drifts by ~10%, hence the margin.
COMPILE_GAINS: dict[tuple[str, str, str, str | None], tuple[float, float, float]] = {
    ("cpu", "fp32", "nima", "resnet50"): (0.0276, 15.9, 8.5),  # 6.2 -> 7.5 img/s
    ("cpu", "fp32", "hla-gcn", "resnet50"): (0.0214, 28.7, 16.6),  # 5.3 -> 6.0
    ("cpu", "fp32", "nima", "vgg16"): (0.0077, 16.6, 7.1),  # 3.91 -> 4.03 (nima-vgg16-ava)
    ("cpu", "fp32", "topiq-iaa", None): (0.0642, 73.7, 49.4),  # 1.17 -> 1.26 (topiq-iaa-r50-ava)
    ("cpu", "fp32", "laion-aesthetic", None): (0.2069, 55.8, 47.2),  # 0.54 -> 0.61 (laion-aesthetic-v2)
    ("cpu", "bf16-amx", "nima", "resnet50"): (0.0170, 24.1, 5.1),  # 34.7 -> 84.4 img/s
    ("cpu", "bf16-amx", "hla-gcn", "resnet50"): (0.0182, 23.4, 7.8),  # 26.9 -> 52.6
    ("cpu", "bf16-amx", "nima", "vgg16"): (0.0113, 15.8, 3.6),  # 32.5 -> 51.2 (nima-vgg16-ava)
    ("cpu", "bf16-amx", "topiq-iaa", None): (0.0728, 42.7, 19.7),  # 5.48 -> 9.12 (topiq-iaa-r50-ava)
    ("cpu", "bf16-amx", "laion-aesthetic", None): (0.1018, 42.0, 22.2),  # 4.19 -> 7.31 (laion-aesthetic-v2)
}
COMPILE_MARGIN = 2.0  # auto compiles when photos x saving > MARGIN x compilation
DECODE_MODES = ("auto", "workers", "device")  # --decode: who decodes plain JPEGs (device_lane_decision)
FACES_MISSING = "faces: not looked for (pip install 'aesthete-photo[faces]')"
MODEL_ERROR = "model-error"  # a failure kind: the model raised on the photo alone (retried by the next run)


@dataclass
class ModelChoice:
    """The model and weights a run scores with; ``checkpoint`` None means technical signals only."""

    model: str | None  # None: no model was asked for and the user has no aesthetic weights
    checkpoint: str | None = None
    weights_name: str | None = None
    key: ModelKey | None = None
    policy: InputPolicy | None = None
    notice: str | None = None  # why there are no aesthetic scores, and the ways out
    # Embed-only (aesthete.embed_only): the ImageNet backbone whose trunk stores embeddings, no score.
    backbone: str | None = None

    @property
    def embed_only(self) -> bool:
        return self.backbone is not None


@dataclass
class Failure:
    path: str
    kind: str
    reason: str


@dataclass
class ScoreSummary:
    found: int = 0
    scored: int = 0  # photos the model scored in this run
    analysed: int = 0  # photos decoded for technical signals only (no weights)
    faces_filled: int = 0  # known photos decoded again only to look for their faces (never scored again)
    remeasured: int = 0  # known photos decoded again because an earlier aesthete measured their signals
    cached: int = 0  # unchanged photos, or moved ones recognised by content
    paired: int = 0  # RAW files that are one photo with the camera's JPEG beside them (not decoded)
    failed: list[Failure] = field(default_factory=list)
    seconds: float = 0.0
    model: str | None = None
    weights: str | None = None
    device: str | None = None
    precision: str | None = None
    compiled: bool | None = None  # the model ran through torch.compile (None: no model ran)
    device_decoded: int = 0  # photos decoded on the model's device (the device lane), not by the workers
    decode_notice: str | None = None  # why the device lane was asked for and not used
    notice: str | None = None
    faces_notice: str | None = None  # why this run's photos have no face signals (the extra is missing)
    interrupted: bool = False
    personal: int | None = None  # with a personal head as --weights: photos it scored
    embed_only: bool = False  # ImageNet backbone weights: ``scored`` photos got embeddings, no aesthetic score
    discovery_errors: list[Failure] = field(default_factory=list)
    # Files this run set out to read; not in to_dict (the JSON). A rescan's failures are mostly recorded
    # ones, not read again, so `failed` cannot tell the CLI whether there was nothing new (field test).
    read: int = field(default=0, repr=False)

    @property
    def throughput(self) -> float:
        work = self.scored + self.analysed + self.faces_filled + self.remeasured
        return work / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["read"]
        data["throughput"] = round(self.throughput, 2)
        data["seconds"] = round(self.seconds, 3)
        return data


ProgressFn = Callable[[int, int], None]


def choose_model(model: str | None, weights: str | None) -> ModelChoice:
    """Resolve ``--model``/``--weights`` without torch: a checkpoint's header names its architecture.

    With neither, the best model whose weights the user has (by the publisher's AVA SRCC recorded in the
    registry: :func:`aesthete.weights.best_available`); with none, technical signals only and a notice
    naming the one command that gets the recommended checkpoint."""
    from aesthete.weights import WeightsError, best_available, default_weights_for, resolve_backbone, resolve_weights

    backbone = resolve_backbone(weights) if weights else None
    if backbone is not None:
        return _embed_only_choice(*backbone, model)
    if model is None and weights is None:
        resolved = best_available()
        if resolved is None:
            return ModelChoice(model=None, notice=first_run_notice())
        name = resolved.meta["arch"]
    else:
        name = check_architecture(model or DEFAULT_MODEL, scoring=True)
        resolved = resolve_weights(weights, arch=model) if weights else default_weights_for(name)
    if resolved is None:
        notice = (
            f"no weights available for {name!r}: aesthetic scores were not computed "
            "(technical signals were). Get weights with `aesthete weights pull NAME` (see `aesthete weights list`), "
            "register a checkpoint with `aesthete weights add FILE --name N`, "
            f"or train one with `aesthete train {name}`."
        )
        return ModelChoice(model=name, notice=notice)
    arch = resolved.meta["arch"]
    if model and model != arch:
        raise WeightsError(f"weights {weights!r} are for model {arch!r}, not {model!r}")
    policy = InputPolicy.from_dict(resolved.meta["policy"])
    return ModelChoice(
        model=arch,
        checkpoint=str(resolved.path),
        weights_name=resolved.name,
        key=ModelKey(arch, resolved.weights_id, policy.key),
        policy=policy,
    )


def _embed_only_choice(entry: Any, digest: str, model: str | None) -> ModelChoice:
    """``--weights`` naming an ImageNet backbone: its trunk stores embeddings for ``learn``; no score."""
    from aesthete import embed_only
    from aesthete.weights import WeightsError

    name = embed_only.model_name(entry.backbone)
    if model and model != name:
        raise WeightsError(
            f"weights {entry.name!r} are ImageNet {entry.backbone} weights (model {name}), not {model!r}"
        )
    key = ModelKey(name, digest[:16], embed_only.POLICY.key)
    return ModelChoice(name, str(entry.path), entry.name, key, embed_only.POLICY, backbone=entry.backbone)


def first_run_notice() -> str:
    """What ``score`` says when the user has no aesthetic weights at all: the one command that gets the
    recommended checkpoint (the best published AVA SRCC), its licence and download size, and the
    permissive choice when the recommended one is not permissive."""
    from aesthete.weights import ava_srcc, download_size, human_size, recommended

    best, free = recommended()
    head = "no aesthetic weights yet: aesthetic scores were not computed (technical signals were)."
    if best is None:
        return f"{head} Register a checkpoint with `aesthete weights add FILE --name N`."
    size = download_size(best)
    srcc = ava_srcc(best)
    facts = [
        f"licence {best.license or 'not stated'}"
        + (", non-commercial: pull asks you to accept it" if best.noncommercial else "")
    ]
    facts.append(f"download {human_size(size)}" if size is not None else "download size not published")
    if srcc is not None:
        facts.append(f"publisher's AVA SRCC {srcc:.3f}")
    text = f"{head} Get the recommended checkpoint: `aesthete weights pull {best.name}` ({'; '.join(facts)})."
    if free is not None and free.name != best.name:
        free_size = download_size(free)
        sized = f", {human_size(free_size)}" if free_size is not None else ""
        text += (
            f" The permissive choice is {free.name}: LAION's aesthetic head (Apache-2.0) on OpenAI CLIP (MIT){sized}."
            if free.arch == "laion-aesthetic"
            else f" The permissive choice is {free.name} (licence {free.license}{sized})."
        )
    return text


def plan(
    found: Iterable[Any],
    store: Store,
    key: ModelKey | None,
    rescore: bool,
    known: dict[str, KnownFile] | None = None,
    unfaced: set[str] | None = None,
    remeasure: set[str] | None = None,
    *,
    embed_only: bool = False,
) -> tuple[list[FileJob], int, list]:
    """Split discovered files into work and cache hits, from size and mtime alone (no file is opened).

    Returns (jobs, cached count, previously failed files whose size and mtime did not change). A file
    that failed for want of an optional decoder is tried again once every decoder is installed, and one the model
    raised on (``model-error``: maybe the machine's fault, such as memory) every time.
    A former RAW companion whose partner is gone is a photo of its own now, hence work. With ``embed_only``
    a photo is done when it has an embedding under ``key`` (there is no score). An unchanged, done photo
    whose content is in ``unfaced`` (faces never looked for) or ``remeasure`` (signals of an earlier
    version) is a *fill* job: decoded again for its signals and faces, never scored again. With
    ``rescore``, an unchanged file whose recorded content another unchanged file of this run has too
    (a byte-identical copy) is a cache hit: its twin's job scores the content, whose results are keyed
    by content, for both."""
    unfaced, remeasure = unfaced or set(), remeasure or set()
    known = store.known_files() if known is None else known
    scored = (store.embedded_hashes(key) if embed_only else store.scored_hashes(key)) if key else set()
    jobs, cached, failed_before = [], 0, []
    rescored: set[str] = set()  # with rescore: the recorded content of the unchanged files planned so far
    for entry in found:
        record = known.get(entry.path)
        unchanged = record and record.size == entry.size and record.mtime_ns == entry.mtime_ns
        retry = record and record.error_kind and _worth_retrying(record.error_kind)
        if rescore and unchanged and record.status == "ok" and record.content_hash:
            if record.content_hash in rescored:
                cached += 1
                continue
            rescored.add(record.content_hash)
        if not rescore and unchanged and record.status != "paired" and not retry:
            if record.status == "failed":
                failed_before.append(entry.path)
                continue
            if key is None or record.content_hash in scored:
                content = record.content_hash
                fill = FILL_FACES if content in unfaced else FILL_SIGNALS if content in remeasure else ""
                if fill:
                    jobs.append(FileJob(entry.path, entry.size, entry.mtime_ns, fill=fill))
                else:
                    cached += 1
                continue
        jobs.append(FileJob(entry.path, entry.size, entry.mtime_ns))
    return jobs, cached, failed_before


def _worth_retrying(kind: str) -> bool:
    """Whether a file recorded as failed with ``kind`` is read again although it has not changed: after a
    ``model-error`` always (the fault may have been the machine's, such as memory), after ``no-decoder``
    once every optional decoder is installed. (:mod:`aesthete.decode`, which knows the decoders, imports
    numpy and Pillow: a rescan pays for them only where a file failed.)"""
    if kind == MODEL_ERROR:
        return True
    from aesthete import decode

    return kind == decode.NO_DECODER and decode.ALL_DECODERS


def compile_decision(
    mode: str,
    photos: int,
    device_type: str,
    *,
    cached: bool,
    precision: str = "fp32",
    arch: str = "",
    backbone: str | None = None,
) -> bool:
    """Whether ``--compile MODE`` compiles for ``photos`` photos of model ``arch`` (``backbone``) running
    in ``precision`` on ``device_type``.

    ``on`` always, ``off`` never; ``auto`` only where the model's saving was measured
    (:data:`COMPILE_GAINS`) and the photos' saving exceeds the compilation's cost (smaller with a warm
    inductor cache, ``cached``) :data:`COMPILE_MARGIN` times over. A job of a few dozen photos never
    compiles, so it is never slower than eager."""
    check_compile_mode(mode)
    if mode != "auto":
        return mode == "on"
    gain = COMPILE_GAINS.get((device_type, precision, arch, backbone))
    if gain is None:  # no measured saving for this model in this precision on this device: eager
        return False
    saving, first, warm = gain
    return photos * saving > COMPILE_MARGIN * (warm if cached else first)


def device_lane_decision(mode: str) -> bool:
    """Whether ``--decode MODE`` sends plain JPEGs to the model's device (:mod:`aesthete.device_lane`):
    ``device`` does, on a CPU too (the lane's tests run it there), and faces are then not looked for in
    the photos it decodes; ``workers`` and ``auto`` do not. ``auto`` took the lane on CUDA until the lane
    was measured there: on an H200 with 16 cores it was no faster than the workers over 12,000 photos, then
    1.47x faster over 40,000 (BENCHMARKS.md, GPU). The workers keep a decoder crash to one file and look
    for faces, so ``auto`` stays with them until a second run confirms the gain."""
    if mode not in DECODE_MODES:
        from aesthete.devices import EngineError

        raise EngineError(f"unknown --decode {mode!r}; use {', '.join(DECODE_MODES)}")
    return mode == "device"


def default_workers() -> int:
    """Decode processes: one per core, on any device. On a CPU they share the cores with the model's
    threads (one per core too), and the scheduler shares the cores out by runnable thread, so it takes as
    many workers as model threads for decoding to get up to half of the CPU when it needs it: a 24-MP
    photo's reduced-size decode costs about as much CPU as its ResNet-50 forward pass. With half as many,
    decoding gets a third of the CPU while the model runs and holds back 24-MP photos. Idle workers cost nothing."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def score(
    roots: Paths,
    *,
    store: Store,
    model: str | None = None,
    weights: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int | None = None,
    workers: int | None = None,
    recursive: bool = True,
    rescore: bool = False,
    progress: ProgressFn | None = None,
    file_timeout: float | None = None,
    compile: str = "auto",
    phase: Callable[[str], None] | None = None,
    decode: str = "auto",
) -> ScoreSummary:
    """Score every photo under ``roots`` and cache the results in ``store``.

    Raises :class:`aesthete.errors.AestheteError` subclasses (unknown model, ``aesthete.weights`` and
    checkpoint errors, ``aesthete.engine.EngineError``) before any work starts; during the run a bad file
    is recorded, never raised, and a file whose decode runs longer than ``file_timeout`` seconds (default
    :data:`aesthete.pipeline.FILE_TIMEOUT_S`) is abandoned and recorded. ``compile`` (auto, on, off) runs the
    model through ``torch.compile``; auto only when enough photos need the model to repay it (:func:`compile_decision`).
    ``phase`` is told, before any photo, what the run does to them: ``"scoring"`` when a model runs,
    ``"reading"`` when there are no weights and only technical signals are taken (a progress label); then
    ``"loading the model"`` and ``"scoring"`` again around the model's load, once the first photo needs it.
    ``decode`` (auto, workers, device) says who decodes plain JPEGs once the model is loaded
    (:func:`device_lane_decision`).
    Ctrl-C stops after writing every finished photo and returns the summary with ``interrupted=True``.
    """
    started = time.perf_counter()
    compile_decision(compile, 0, "cpu", cached=False)  # a bad mode fails before any work
    device_lane_decision(decode)  # (as does a bad --decode)
    check_run_options(device, precision, compile)  # and typos in these, even when no photo needs the model
    summary = ScoreSummary()
    roots = [os.path.abspath(r) for r in path_list(roots)]
    from aesthete.learning import personal_choice  # numpy only; a personal head applies after the base runs

    personal = personal_choice(weights, model) if weights else None
    choice = personal[1] if personal else choose_model(model, weights)
    summary.model, summary.weights, summary.notice = choice.model, choice.weights_name, choice.notice
    summary.embed_only = choice.embed_only and not personal  # a head on embed-only weights does score
    if phase:
        phase("scoring" if choice.checkpoint else "reading")

    unreadable: list[str] = []  # what the walk could not look into: the records under it stay

    def on_discovery_error(path: str, reason: str) -> None:
        unreadable.append(path)
        summary.discovery_errors.append(Failure(path_key(path)[0], "unreadable", reason))

    run_id, status = None, "done"
    try:
        found = list(discover(roots, recursive=recursive, on_error=on_discovery_error))
        summary.found = len(found)
        # Planning reads every file row before the first write: a damaged database fails here, unwritten.
        known = store.known_files()
        gone = _no_longer_found(known, found, roots, recursive, unreadable)
        found, companions = _pair(found, known)
        summary.paired = len(companions)
        look = faces.available()  # the workers look for faces only where the extra is installed
        unfaced = store.hashes_without_faces() if look else set()
        jobs, summary.cached, failed_before = plan(found, store, choice.key, rescore, known, unfaced,
                                                   store.hashes_measured_before(SIGNALS_VERSION),
                                                   embed_only=choice.embed_only)  # fmt: skip
        summary.read = len(jobs)
        if jobs and not look:
            summary.faces_notice = FACES_MISSING
        summary.failed.extend(_recorded_failures(store, failed_before))
        store.write(files=_companion_rows(companions, known))
        store.forget(gone)
        run_id = store.start_run(roots, choice.key, recursive=recursive)
        if jobs:
            from aesthete.pipeline import run_jobs  # numpy, Pillow, the decoders: for files to read only

            run_jobs(jobs, store, choice, summary, device, precision, batch_size, workers, rescore, progress,
                     file_timeout, compile, faces=look, phase=phase, decode=decode)  # fmt: skip
        if personal:
            from aesthete.learning import apply_head

            summary.personal = apply_head(store, personal[0])
            summary.weights = f"{weights} (personal, on {choice.weights_name})"
    except KeyboardInterrupt:
        summary.interrupted, status = True, "interrupted"
        interrupts.clear()
        store.roll_back_interrupted()  # the batch in flight, if the interrupt landed inside its write
    except sqlite3.DatabaseError:
        run_id = None  # a database that fails to read or write gets no further writes
        raise
    finally:
        summary.seconds = time.perf_counter() - started
        counts = {"found": summary.found, "scored": summary.scored, "analysed": summary.analysed,
                  "cached": summary.cached, "failed": len(summary.failed)}  # fmt: skip
        if run_id is not None:
            store.finish_run(run_id, status, counts)
    return summary


def _no_longer_found(
    known: dict[str, KnownFile], found: list[FoundFile], roots: list[str], recursive: bool, unreadable: list[str]
) -> list[str]:
    """The recorded failures and RAW companions in the folders this walk looked through that it no longer
    found: deleted or renamed since. They hold no score, so forgetting them loses nothing, and `failures`
    and `rank` (a photo's ``companions``) stop naming files that are gone. What lies under a root or folder
    the walk could not read (a drive that is not mounted) is kept."""
    seen = {entry.path for entry in found}
    folders = set(roots)

    def walked(path: str) -> bool:
        if any(is_within(path, bad) for bad in unreadable):
            return False
        if recursive:
            return any(is_within(path, root) for root in roots)
        return path in folders or os.path.dirname(path) in folders

    return [
        path
        for path, record in known.items()
        if record.status in ("failed", "paired") and path not in seen and walked(path)
    ]


def _pair(found: list[FoundFile], known: dict[str, KnownFile]) -> tuple[list[FoundFile], list[tuple[FoundFile, str]]]:
    """:func:`pair_raws`, except that a RAW whose JPEG could not be read (as an earlier scan recorded, and
    the JPEG has not changed since) is a photo of its own."""
    current = {entry.path: entry for entry in found}
    photos, companions = pair_raws(found)
    paired = []
    for raw, partner in companions:
        record, entry = known.get(partner), current[partner]
        if record and record.status == "failed" and (record.size, record.mtime_ns) == (entry.size, entry.mtime_ns):
            photos.append(raw)
        else:
            paired.append((raw, partner))
    return photos, paired


def _companion_rows(companions: list[tuple[FoundFile, str]], known: dict[str, KnownFile]) -> list[dict[str, Any]]:
    """``files`` rows for RAW companions that are new, changed or newly paired (none on a plain rescan).

    A companion is never read: no hash, no decode; its partner is the photo."""
    rows = []
    for entry, partner in companions:
        partner_text = path_key(partner)[0]
        record = known.get(entry.path)
        if record and (record.size, record.mtime_ns, record.status, record.pair_of) == (
            entry.size, entry.mtime_ns, "paired", partner_text,
        ):  # fmt: skip
            continue
        rows.append(file_row(entry.path, entry.size, entry.mtime_ns, "paired", pair_of=partner_text))
    return rows


def _recorded_failures(store: Store, paths: list[str]) -> list[Failure]:
    if not paths:
        return []
    wanted = {path_key(p)[0] for p in paths}
    return [Failure(f["path"], f["kind"], f["reason"]) for f in store.failures() if f["path"] in wanted]
