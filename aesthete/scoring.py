"""Score folders: discover -> compare with the cache -> decode in workers -> batch -> model -> store.

The order matters for speed. Unchanged files are recognised from (path, size, mtime) alone, before
any file is opened. Decode workers are forked before torch is imported, so they stay small, and torch
is imported only when some photo actually needs the model. With ``--decode device``, small plain JPEGs
skip the workers' decode: they only read and hash them, and the device lane (:mod:`aesthete.device_lane`)
decodes and measures them next to the model.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from aesthete import faces as face_stage
from aesthete import interrupts
from aesthete.architectures import DEFAULT_MODEL, check_architecture
from aesthete.decode import ALL_DECODERS, NO_DECODER
from aesthete.decode_worker import (
    FILL_FACES,
    FILL_SIGNALS,
    FileJob,
    FileResult,
    WorkerConfig,
    init_worker,
    process_files,
)
from aesthete.devices import check_compile_mode, check_run_options
from aesthete.discover import FoundFile, discover, pair_raws
from aesthete.input_policy import InputPolicy
from aesthete.paths import Paths, is_within, path_list
from aesthete.pixel_slots import lend_slots
from aesthete.signals import VERSION as SIGNALS_VERSION
from aesthete.store import KnownFile, ModelKey, Store, embedding_row, file_row, now_iso, path_key

# Files per task sent to a worker while many are queued: one message each way and one future for four
# files halved the main process's CPU per photo on the 2-core CPU (BENCHMARKS.md, "Host side"). Files share
# a task only while their sizes add up to TASK_BYTES at most: a large one (a 24-MP JPEG, a RAW file), slow
# to decode and cheap to send by comparison, goes alone and keeps the whole FILE_TIMEOUT_S to itself.
FILES_PER_TASK = 4
TASK_BYTES = 4 << 20
FLUSH_ROWS = 256  # rows without model work are written in transactions of this size
FLUSH_SECONDS = 1.0
FILE_TIMEOUT_S = 120.0  # a decode still running after this long is abandoned (its worker killed) and recorded

# --compile auto: compile when the photos to score repay the compilation twice over. Per model and precision,
# as measured with inductor's freezing in effect, batch 8, channels-last, 2 threads, eager and compiled timed
# in turns (BENCHMARKS.md "Compiled inference"): (device, precision, architecture, backbone) -> (saving s a
# photo, compilation s with an empty inductor cache, with a warm one). fp32: the AVX2-only 2-core AMD EPYC
# (no native bf16), 2026-11-27 22:31-22:59 UTC. A model or precision without an entry stays eager under auto:
# bf16 CPUs among them, whose earlier figures were taken while freezing silently did not happen (the
# weights were not folded in: a different compiled program), and CUDA (compiled ResNet-50 was 1.54x on an
# H100, but score is decode-bound there). The savings are single runs on a machine whose speed drifts by
# ~10%, hence the margin.
COMPILE_GAINS: dict[tuple[str, str, str, str | None], tuple[float, float, float]] = {
    ("cpu", "fp32", "nima", "resnet50"): (0.0276, 15.9, 8.5),  # 6.2 -> 7.5 img/s
    ("cpu", "fp32", "hla-gcn", "resnet50"): (0.0214, 28.7, 16.6),  # 5.3 -> 6.0
    ("cpu", "fp32", "nima", "vgg16"): (0.0077, 16.6, 7.1),  # 3.91 -> 4.03 (nima-vgg16-ava)
    ("cpu", "fp32", "topiq-iaa", None): (0.0642, 73.7, 49.4),  # 1.17 -> 1.26 (topiq-iaa-r50-ava)
    ("cpu", "fp32", "laion-aesthetic", None): (0.2069, 55.8, 47.2),  # 0.54 -> 0.61 (laion-aesthetic-v2)
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
        retry = record and ((record.error_kind == NO_DECODER and ALL_DECODERS) or record.error_kind == MODEL_ERROR)
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
    :data:`FILE_TIMEOUT_S`) is abandoned and recorded. ``compile`` (auto, on, off) runs the model through
    ``torch.compile``; auto only when enough photos need the model to repay it (:func:`compile_decision`).
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
        look = face_stage.available()  # the workers look for faces only where the extra is installed
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
            _run_jobs(jobs, store, choice, summary, device, precision, batch_size, workers, rescore, progress,
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


def _run_jobs(
    jobs: list[FileJob],
    store: Store,
    choice: ModelChoice,
    summary: ScoreSummary,
    device: str,
    precision: str,
    batch_size: int | None,
    workers: int | None,
    rescore: bool,
    progress: ProgressFn | None,
    file_timeout: float | None,
    compile: str = "off",
    *,
    faces: bool = False,
    phase: Callable[[str], None] | None = None,
    decode: str = "auto",
) -> None:
    config = WorkerConfig(
        db_path=str(store.path), policy=choice.policy.to_dict() if choice.policy else None, key=choice.key,
        rescore=rescore, parent_pid=os.getpid(), faces=faces, embed_only=choice.embed_only,
    )  # fmt: skip
    worker_count = workers or default_workers()
    pool = _DecodePool(worker_count, config)
    writer = _Writer(store, choice.key)
    finished = False
    # The model loads when the first photo needs it, while the workers go on decoding: a run whose new
    # files are all known content (moved or renamed photos) or fills (faces only) never loads it.
    batcher: _Batcher | None = None
    lane: Any = None  # aesthete.device_lane.DeviceLane, once the model is loaded and the lane is chosen
    done = 0
    # The contents given to the model in this run. A byte-identical copy decoded while its twin was (before
    # the twin's score was in the database for the worker to see) is not run again: results are per content.
    modelled: set[str | None] = set()

    def finish(result: FileResult) -> None:
        nonlocal done, batcher, lane
        if result.jpeg is not None:  # the device lane decodes it with its batch
            from_lane(*lane.add(result))
            return
        if result.pixels is not None and result.content_hash in modelled:
            result = replace(result, pixels=None, image=None)  # recorded as known content, as a rescan would
        if result.pixels is not None:
            modelled.add(result.content_hash)
            if batcher is None:
                batcher = _start_batcher(choice, writer, summary, device, precision, batch_size, compile,
                                         photos=len(jobs) - done, phase=phase)  # fmt: skip
                lane = _start_lane(batcher.runner, decode, summary)
                pool.device_lane = lane is not None
            batcher.add(result)
        else:
            _record(result, writer, summary)
        writer.maybe_flush()
        done += 1
        if progress:
            progress(done, len(jobs))

    def from_lane(ready: list[FileResult], undecodable: list[FileResult]) -> None:
        for result in ready:
            finish(result)
        retry.extend(FileJob(r.path, r.size, r.mtime_ns) for r in undecodable)  # for the workers, after

    try:
        timeout = FILE_TIMEOUT_S if file_timeout is None else file_timeout
        todo, retry = jobs, []  # retry: files the device could not decode, for the workers
        while todo:
            for result in pool.results(todo, timeout=timeout):
                interrupts.raise_if_pressed()  # a Ctrl-C that a worker's fork swallowed
                finish(result)
            if lane is not None:
                from_lane(*lane.flush())
            pool.device_lane = False
            todo, retry = retry, []
        if batcher is not None:
            batcher.flush_all()
            summary.compiled = batcher.runner.compiled
        if faces and lane is not None and lane.decoded:
            summary.faces_notice = (f"faces: not looked for in the {lane.decoded} photos decoded on the device "
                                    "(--decode device); the next `score` looks for them")  # fmt: skip
        finished = True
    finally:
        summary.device_decoded = lane.decoded if lane is not None else 0
        if not finished:  # save what the workers finished; what needs the model is redone next time
            store.roll_back_interrupted()
            for result in pool.finished():
                if result.pixels is None and result.jpeg is None:
                    _record(result, writer, summary)
        # After Ctrl-C or an error the decodes in flight are not waited for: one of them may never end.
        pool.close(wait=finished)
        writer.flush()


def _start_lane(runner: Any, decode: str, summary: ScoreSummary) -> Any:
    """The device lane for ``runner``'s model, or None when the workers decode everything (also when
    no JPEG decoder works on the device: the summary's ``decode_notice`` says why)."""
    if not device_lane_decision(decode):
        return None
    from aesthete.device_lane import DeviceLane, pick_decoder

    decoder, problem = pick_decoder(runner.device)
    if decoder is None:
        summary.decode_notice = f"no JPEG decoder works on {runner.device} ({problem}); the CPU workers decoded"
        return None
    return DeviceLane(runner.device, runner.model.policy, runner.batch_size, decoder)


def _start_batcher(
    choice: ModelChoice,
    writer: _Writer,
    summary: ScoreSummary,
    device: str,
    precision: str,
    batch_size: int | None,
    compile: str,
    *,
    photos: int,
    phase: Callable[[str], None] | None,
) -> _Batcher:
    """Load the model (for at most ``photos`` more photos: what ``--compile auto`` weighs) and the batcher
    that feeds it."""
    assert choice.checkpoint is not None, "only a run with a model asks workers for its input"
    if phase:
        phase("loading the model")
    runner = load_runner(choice.checkpoint, device, precision, compile=compile, photos=photos,
                         weights_id=choice.key.weights_id if choice.key else None,
                         backbone=choice.backbone)  # fmt: skip
    if phase:
        phase("scoring")
    summary.device, summary.precision = str(runner.device), runner.precision
    runner.batch_size = batch_size or default_batch(runner)
    return _Batcher(runner.batch_size, runner, writer, summary)


def _record(result: FileResult, writer: _Writer, summary: ScoreSummary) -> None:
    """A result with no model work: a failure, technical signals only, or content already known."""
    if result.error_kind:
        summary.failed.append(Failure(path_key(result.path)[0], result.error_kind, result.error or ""))
        writer.add_file(result, "failed")
        return
    if result.image is not None and result.fill == FILL_FACES:
        summary.faces_filled += 1
    elif result.image is not None and result.fill == FILL_SIGNALS:
        summary.remeasured += 1
    elif result.image is not None:
        summary.analysed += 1
    else:
        summary.cached += 1
    writer.add_file(result, "ok")


def load_runner(
    checkpoint: str,
    device: str,
    precision: str,
    *,
    compile: str = "off",
    photos: int = 0,
    weights_id: str | None = None,
    backbone: str | None = None,
) -> Any:
    """The model of ``checkpoint`` as ``score`` runs it (the benchmark times this same runner), compiled
    as :func:`compile_decision` decides for ``photos`` photos. Compiled code is cached on disk under
    aesthete's cache folder, keyed by torch version, model, weights (``weights_id``, else the checkpoint
    file's path, size and mtime) and input policy. With ``backbone``, ``checkpoint`` is torchvision's
    ImageNet classifier file for it and the runner is embed-only (:func:`aesthete.embed_only.build`)."""
    # Before torch (and its OpenMP) loads: the decode workers share the cores with torch's threads, and
    # threads spinning at OpenMP barriers (libgomp's default) burn the cores the workers need, then stall
    # whenever a worker preempts one of them. Sleeping instead measured 2-3x faster end to end on 2 cores.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from aesthete.checkpoint import load_model
    from aesthete.engine import ModelRunner, autocast_dtype, pick_device, precision_name

    torch_device = pick_device(device)
    if backbone is not None:
        from aesthete import embed_only

        model = embed_only.build(backbone, checkpoint)
    else:
        model = load_model(checkpoint)
    dtype = autocast_dtype(torch_device, precision)
    cache = None
    if compile != "off":
        from aesthete.engine import inductor_cache_dir
        from aesthete.paths import cache_dir

        if weights_id is None:
            stat = os.stat(checkpoint)
            weights_id = f"{os.path.abspath(checkpoint)}|{stat.st_size}|{stat.st_mtime_ns}"
        cache = inductor_cache_dir(cache_dir(), model=model.arch, weights=weights_id,
                                   policy=f"{model.policy.key}|{dtype}|{torch_device.type}")  # fmt: skip
    cached = bool(cache and cache.is_dir() and any(cache.iterdir()))
    # An embed-only trunk (aesthete.embed_only) has no builder config, hence no backbone entry.
    use = compile_decision(compile, photos, torch_device.type, cached=cached, precision=precision_name(dtype),
                           arch=model.arch, backbone=getattr(model, "config", {}).get("backbone"))  # fmt: skip
    return ModelRunner(model, torch_device, dtype, compile=use, cache_dir=cache if use else None)


def default_batch(runner: Any) -> int:
    """``score``'s batch size for ``runner``."""
    return 64 if runner.device.type == "cuda" else 8


class _DecodePool:
    """The decode worker processes, replaced when one of them hangs or dies, so that a file costs itself
    and never the run: a decode still running after ``timeout`` seconds is abandoned (every worker is
    killed, since a stuck C decoder cannot be interrupted) and the others' files go back in the queue; when
    a worker dies (a crash in a decoder, the out-of-memory killer), the files then in flight are retried one
    at a time, and the one that kills a worker on its own is recorded as ``crashed``. Files go to the
    workers a few per task (:data:`FILES_PER_TASK`); when a task of several hangs, its files are retried
    one at a time too, and only the one that hangs on its own is recorded as ``timeout``."""

    def __init__(self, count: int, config: WorkerConfig) -> None:
        self.count = count
        # Files in flight: two tasks a worker and a few more, so that none waits for a task while the main
        # process waits for a slow one ahead of it; memory stays flat for any library size.
        self.window = FILES_PER_TASK * (2 * count + 2)
        # With a model, each file in flight is lent a slot for its model input (aesthete.pixel_slots).
        self.slots = lend_slots(InputPolicy.from_dict(config.policy), self.window) if config.policy else None
        self.config = replace(config, pixel_slots=(str(self.slots.path), self.slots.size)) if self.slots else config
        self.device_lane = False  # ask for plain JPEGs undecoded (FileJob.device_lane)
        try:
            self.pool = self._start()
        except BaseException:  # Ctrl-C as the workers started: the caller never gets this pool to close
            if self.slots:
                self.slots.close()
            raise
        # (the task's files as submitted, its future, whether it is a file retried alone)
        self.pending: deque[tuple[list[FileJob], Future, bool]] = deque()

    def _start(self) -> ProcessPoolExecutor:
        # Fork before torch is imported: the workers then never hold torch's threads or memory.
        fork = sys.platform == "linux" and "torch" not in sys.modules
        context = multiprocessing.get_context("fork" if fork else "spawn")
        pool = ProcessPoolExecutor(self.count, mp_context=context, initializer=init_worker, initargs=(self.config,))
        try:
            with interrupts.held_while_starting_children():
                started = pool.submit(int)  # the first submission forks every worker: now, before torch is imported
            started.result()
        except BaseException:  # a Ctrl-C held back while they started is raised here: stop them before it goes on
            _kill(pool)
            raise
        return pool

    def results(self, jobs: list[FileJob], timeout: float) -> Iterator[FileResult]:
        """Like ``pool.map`` with at most ``window`` files in flight, and exactly one :class:`FileResult`
        per job whatever happens to the workers."""
        queue: deque[FileJob] = deque(jobs)
        retry: deque[FileJob] = deque()  # suspects of a crash or a hang: each is run alone to find the culprit
        pending = self.pending
        while queue or retry or pending:
            if retry and not pending:
                pending.append((*self._submit([retry.popleft()]), True))
            while not retry and queue and sum(len(task) for task, _, _ in pending) < self.window:
                # Fewer files a task near the end, so that every worker keeps a share.
                most = max(1, min(FILES_PER_TASK, len(queue) // (2 * self.count)))
                pending.append((*self._submit(next_task(queue, most)), False))
            task, future, alone = pending.popleft()
            try:
                results = self._received(task, future, timeout)
            except FutureTimeout:  # one of the task's files hangs: if it has several, each runs alone
                reason = f"decoding did not finish in {timeout:g} s; abandoned"
                lost, suspects = (_lost(task[0], "timeout", reason), []) if len(task) == 1 else (None, task)
                requeue = queue
            except BrokenProcessPool:  # some file in flight killed its worker: each runs alone
                reason = "the decoder crashed on this file"
                lost, suspects = (_lost(task[0], "crashed", reason), []) if alone else (None, task)
                requeue = retry
            except Exception as exc:  # e.g. a result that cannot be sent back; the pool itself is fine
                self._give_back_slots(task)
                if len(task) > 1:  # whose result it was is found by sending each alone
                    retry.extend(task)
                    continue
                yield _lost(task[0], "decode-error", f"{exc.__class__.__name__}: {exc}".splitlines()[0])
                continue
            else:
                self._give_back_slots(task)
                yield from results
                continue
            # The pool is replaced: keep what the other workers finished, queue the rest again.
            finished, again = [], []
            for other, other_future, _ in pending:
                if other_future.done() and not other_future.cancelled() and other_future.exception() is None:
                    finished.extend(self._received(other, other_future))
                else:
                    again.extend(other)
            pending.clear()
            requeue.extendleft(reversed(again))
            retry.extendleft(reversed(suspects))
            _kill(self.pool)
            if self.slots:  # no worker is left to write in one
                self.slots.give_back_all()
            self.pool = self._start()
            yield from finished
            if lost:
                yield lost

    def finished(self) -> list[FileResult]:
        """Results the workers have sent back but :meth:`results` has not handed out yet."""
        done = [(task, f) for task, f, _ in self.pending if f.done() and not f.cancelled() and f.exception() is None]
        return [result for task, f in done for result in self._received(task, f)]

    def _submit(self, task: list[FileJob]) -> tuple[list[FileJob], Future]:
        """``task``'s files as sent (with this run's lane choice and a slot each, when one is free) and the
        future of their results."""
        task = [
            replace(job, device_lane=self.device_lane, slot=self.slots.take() if self.slots else None) for job in task
        ]
        try:
            with interrupts.held_while_starting_children():  # a spawning pool starts a worker at a submission
                return task, self.pool.submit(process_files, task)
        except BrokenProcessPool as exc:  # a worker died since the last result: handled when this one is due
            future: Future = Future()
            future.set_exception(exc)
            return task, future

    def _received(self, task: list[FileJob], future: Future, timeout: float | None = None) -> list[FileResult]:
        """``task``'s results, with the model inputs their worker left in the files' slots copied out."""
        results = future.result(timeout=timeout)
        for job, result in zip(task, results):
            if result.pixels_shape is not None:
                assert self.slots is not None and job.slot is not None
                result.pixels, result.pixels_shape = self.slots.copy_out(job.slot, result.pixels_shape), None
        return results

    def _give_back_slots(self, task: list[FileJob]) -> None:
        for job in task:
            if self.slots is not None and job.slot is not None:
                self.slots.give_back(job.slot)

    def close(self, *, wait: bool) -> None:
        if wait:
            self.pool.shutdown(wait=True)
        else:
            _kill(self.pool)
        if self.slots:
            self.slots.close()


def _kill(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool``'s workers now, whatever they are doing."""
    # ProcessPoolExecutor has no public way to stop a running call (``terminate_workers`` is 3.14+).
    processes = list((pool._processes or {}).values())
    for process in processes:
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout=5)


def next_task(queue: deque[FileJob], most: int) -> list[FileJob]:
    """The next task for a worker, taken from ``queue``: its first file, and the files after it while
    the task holds fewer than ``most`` and their sizes stay within :data:`TASK_BYTES`."""
    task = [queue.popleft()]
    total = task[0].size
    while queue and len(task) < most and total + queue[0].size <= TASK_BYTES:
        total += queue[0].size
        task.append(queue.popleft())
    return task


def _lost(job: FileJob, kind: str, reason: str) -> FileResult:
    return FileResult(job.path, job.size, job.mtime_ns, error_kind=kind, error=reason)


class _Writer:
    """Buffers rows and writes them in short transactions (by count or by time)."""

    def __init__(self, store: Store, key: ModelKey | None) -> None:
        self.store, self.key = store, key
        self.files: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []
        self.scores: list[dict[str, Any]] = []
        self.embeddings: list[dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def add_file(self, result: FileResult, status: str) -> None:
        self.files.append(
            file_row(
                result.path,
                result.size,
                result.mtime_ns,
                status,
                content_hash=result.content_hash,
                error_kind=result.error_kind,
                error=result.error,
            )
        )
        if result.image is not None:
            self.images.append(result.image)

    def add_embedding(self, result: FileResult, vector: np.ndarray) -> None:
        assert self.key is not None and result.content_hash is not None
        self.embeddings.append(embedding_row(result.content_hash, self.key, vector))

    def add_score(self, result: FileResult, probs: np.ndarray, bin_values: np.ndarray) -> None:
        mean = float(probs @ bin_values)
        std = float(np.sqrt(max(0.0, probs @ (bin_values - mean) ** 2)))
        dist = "[" + ",".join(f"{p:.6f}" for p in probs) + "]"
        self._append(result, dist=dist, mean=mean, std=std, p_high=float(probs[len(probs) // 2 :].sum()))

    def add_scalar(self, result: FileResult, value: float) -> None:
        """A score model's one number: stored as ``mean`` (the column every ranking reads) with no
        distribution, spread or p_high, which such a model does not predict and which are not made up."""
        self._append(result, dist=None, mean=float(value), std=None, p_high=None)

    def _append(
        self, result: FileResult, *, dist: str | None, mean: float, std: float | None, p_high: float | None
    ) -> None:
        assert self.key is not None
        self.scores.append({
            "content_hash": result.content_hash, "model": self.key.model, "weights_id": self.key.weights_id,
            "preprocess": self.key.preprocess, "dist": dist, "mean": mean, "std": std, "p_high": p_high,
            "scored_at": now_iso(),
        })  # fmt: skip
        self.add_file(result, "ok")

    def maybe_flush(self) -> None:
        if len(self.files) >= FLUSH_ROWS or time.monotonic() - self.last_flush > FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        self.store.write(files=self.files, images=self.images, scores=self.scores, embeddings=self.embeddings)
        self.files, self.images, self.scores, self.embeddings = [], [], [], []
        self.last_flush = time.monotonic()


class _Batcher:
    """Groups model inputs of equal shape (aspect-ratio buckets for models that keep the aspect) into
    uniform batches of ``runner.photos_per_batch`` photos (fewer for panoramas); never warps a photo to make
    it fit a batch.

    One batch stays in flight: a batch's rows are stored after the next batch is launched, so on a GPU
    the device runs one batch while the host stores the one before it and takes in the next photos."""

    def __init__(self, batch_size: int, runner: Any, writer: _Writer, summary: ScoreSummary) -> None:
        self.batch_size, self.runner, self.writer, self.summary = batch_size, runner, writer, summary
        self.buckets: dict[tuple[int, ...], list[FileResult]] = {}
        self.pending = 0
        self.in_flight: tuple[list[FileResult], Any] | None = None  # (photos, engine.LaunchedBatch)
        self.output = runner.output
        self.bin_values = runner.model.bin_values.numpy().astype(np.float64) if self.output == "distribution" else None

    def add(self, result: FileResult) -> None:
        bucket = self.buckets.setdefault(result.pixels.shape, [])
        bucket.append(result)
        self.pending += 1
        if len(bucket) >= self.runner.photos_per_batch(result.pixels.shape):  # fewer for panoramas
            self._run(result.pixels.shape)
        elif self.pending > 4 * self.batch_size:  # many distinct shapes: run the fullest bucket
            self._run(max(self.buckets, key=lambda shape: len(self.buckets[shape])))

    def flush_all(self) -> None:
        for shape in list(self.buckets):
            self._run(shape)
        self._store_in_flight()

    def _run(self, shape: tuple[int, ...]) -> None:
        batch = self.buckets.pop(shape)
        self.pending -= len(batch)
        try:
            launched = self._launch(batch)
        except Exception:  # noqa: BLE001 - e.g. out of memory: each photo alone finds the one at fault
            self._store_in_flight()
            self._run_one_at_a_time(batch)
            return
        for result in batch:  # the batch holds them now
            result.pixels = None
        self._store_in_flight()
        self.in_flight = (batch, launched)

    def _launch(self, batch: list[FileResult]) -> Any:
        pixels = self.runner.stack([r.pixels for r in batch])
        return self.runner.launch(pixels, np.array([r.aspect for r in batch]))

    def _run_one_at_a_time(self, batch: list[FileResult]) -> None:
        """A batch the model raised on, photo by photo: a photo it raises on alone is recorded as a
        ``model-error`` with the error's first line (and tried again by the next run: the fault may be the
        machine's, such as memory); every other photo is scored."""
        for result in batch:
            try:
                outputs = self._launch([result]).result()
            except Exception as exc:  # noqa: BLE001 - any model failure costs this photo, not the run
                result.pixels, result.error_kind = None, MODEL_ERROR
                result.error = f"{exc.__class__.__name__}: {str(exc).strip()}".splitlines()[0][:200]
                _record(result, self.writer, self.summary)
                continue
            result.pixels = None
            self._store([result], *outputs)

    def _store_in_flight(self) -> None:
        if self.in_flight is None:
            return
        batch, launched = self.in_flight
        self.in_flight = None
        self._store(batch, *launched.result())

    def _store(self, batch: list[FileResult], outputs: np.ndarray | None, embeddings: np.ndarray | None) -> None:
        rows = outputs if outputs is not None else [None] * len(batch)  # embed-only: no score rows
        for i, (result, row) in enumerate(zip(batch, rows)):
            if embeddings is not None:  # before the score: the score row's file row commits both
                self.writer.add_embedding(result, embeddings[i])
            if self.output == "embedding":  # an ImageNet trunk: the embedding is all there is
                self.writer.add_file(result, "ok")
            elif self.output == "score":
                self.writer.add_scalar(result, float(row))
            else:
                self.writer.add_score(result, row, self.bin_values)
        self.summary.scored += len(batch)
        # A batch and its photos' rows commit together: a crash loses only photos whose batch was not yet
        # stored, and the next run scores them.
        self.writer.flush()
