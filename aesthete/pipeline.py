"""The work of a ``score`` run once it is planned: decode workers -> batches -> model -> store.

:mod:`aesthete.scoring` plans a run (which files are new, changed or lacking something) with no image
library; this module, which needs numpy, Pillow, the decoders and, once a photo needs the model, torch, is
imported only when a run has files to read. Decode workers are forked before torch is imported, so they
stay small. With ``--decode device``, small plain JPEGs skip the workers' decode: they only read and hash
them, and the device lane (:mod:`aesthete.device_lane`) decodes and measures them next to the model.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

import numpy as np

from aesthete import interrupts
from aesthete.decode_worker import init_worker, process_files
from aesthete.input_policy import InputPolicy
from aesthete.jobs import FILL_FACES, FILL_SIGNALS, FileJob, FileResult, WorkerConfig
from aesthete.pixel_slots import lend_slots
from aesthete.scoring import (
    MODEL_ERROR,
    Failure,
    ModelChoice,
    ProgressFn,
    ScoreSummary,
    compile_decision,
    default_workers,
    device_lane_decision,
)
from aesthete.store import ModelKey, Store, embedding_row, file_row, now_iso, path_key

# Files per task sent to a worker while many are queued: one message each way and one future for four
# files halved the main process's CPU per photo on the 2-core CPU (BENCHMARKS.md, "Host side"). Files share
# a task only while their sizes add up to TASK_BYTES at most: a large one (a 24-MP JPEG, a RAW file), slow
# to decode and cheap to send by comparison, goes alone and keeps the whole FILE_TIMEOUT_S to itself.
FILES_PER_TASK = 4
TASK_BYTES = 4 << 20
FLUSH_ROWS = 256  # rows without model work are written in transactions of this size
FLUSH_SECONDS = 1.0
FILE_TIMEOUT_S = 120.0  # a decode still running after this long is abandoned (its worker killed) and recorded


def run_jobs(
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
    from aesthete.engine import ModelRunner, autocast_dtype, cpu_has_amx, pick_device, precision_name

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
    # bf16 on a CPU with AMX has its own entries ("bf16-amx"): compiling pays there 1.6-2.4x, and nowhere
    # else has it been measured with freezing (an AVX512-BF16 CPU without AMX stays eager under auto).
    kind = precision_name(dtype)
    if kind == "bf16" and torch_device.type == "cpu" and cpu_has_amx():
        kind = "bf16-amx"
    # An embed-only trunk (aesthete.embed_only) has no builder config, hence no backbone entry.
    use = compile_decision(compile, photos, torch_device.type, cached=cached, precision=kind,
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
