"""Decode-only throughput: the decode worker's whole job per file (one worker and one per core), the
reduced-size pixel decode alone, and on CUDA the nvJPEG decode lane."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def _timed_process_file(job: Any) -> tuple[Any, float]:
    from aesthete.decode_worker import process_file

    started = time.process_time()
    result = process_file(job)
    return result, time.process_time() - started


def decode_only(paths: Sequence[Path], checkpoint: str, workers: int, device_lane: bool = False) -> dict[str, Any]:
    """The decode worker's whole job per file (read, hash, EXIF, reduced-size decode, technical
    signals, perceptual hash, model input, and faces where ``score`` looks for them: the ``faces``
    extra installed), in ``workers`` forked processes as ``score`` runs them, results shipped back to
    this process. No database, so every file is decoded. With ``device_lane``, the worker's share of
    ``score --decode device`` instead: a plain JPEG is read, hashed and its EXIF parsed, and its bytes
    come back undecoded (``lane_share`` says for how many of the files)."""
    from aesthete import faces
    from aesthete.checkpoint import read_meta
    from aesthete.decode_worker import init_worker
    from aesthete.input_policy import InputPolicy
    from aesthete.jobs import FileJob, WorkerConfig
    from aesthete.store import ModelKey

    meta = read_meta(checkpoint)
    policy = InputPolicy.from_dict(meta["policy"])
    config = WorkerConfig(db_path=None, policy=policy.to_dict(), key=ModelKey(meta["arch"], "bench", policy.key),
                          rescore=False, faces=faces.available())  # fmt: skip
    jobs = [FileJob(str(p), p.stat().st_size, p.stat().st_mtime_ns, device_lane=device_lane) for p in paths]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker, initargs=(config,)) as pool:
        list(pool.map(_timed_process_file, jobs[:workers]))  # warm-up: start the workers, load the codecs
        started = time.perf_counter()
        results = list(pool.map(_timed_process_file, jobs))
        wall = time.perf_counter() - started
    failed = [r.error for r, _ in results if r.error_kind or (r.pixels is None and r.jpeg is None)]
    if failed:
        raise RuntimeError(f"decode failed: {failed[0]}")
    core_s = sum(cpu for _, cpu in results) / len(jobs)
    lane_share = sum(r.jpeg is not None for r, _ in results) / len(jobs)
    return {"img_s": len(jobs) / wall, "core_s_per_img": core_s, "faces": config.faces, "lane_share": lane_share}


def takes_lane(path: Path, checkpoint: str) -> bool:
    """Whether ``score --decode device`` would send this photo to the device (a plain JPEG for the
    checkpoint's input: :func:`aesthete.decode.plain_jpeg`)."""
    from aesthete.checkpoint import read_meta
    from aesthete.decode import plain_jpeg
    from aesthete.decode_worker import decode_target
    from aesthete.input_policy import InputPolicy

    policy = InputPolicy.from_dict(read_meta(checkpoint)["policy"])
    return plain_jpeg(path.read_bytes(), decode_target(policy)) is not None


def pixel_decode_seconds(paths: Sequence[Path], checkpoint: str) -> float:
    """CPU seconds per photo of the reduced-size pixel decode alone (part of the worker's job)."""
    from aesthete.checkpoint import read_meta
    from aesthete.decode import decode
    from aesthete.decode_worker import decode_target
    from aesthete.formats import raw_format
    from aesthete.input_policy import InputPolicy

    target = decode_target(InputPolicy.from_dict(read_meta(checkpoint)["policy"]))
    blobs = [(p.read_bytes(), raw_format(str(p))) for p in paths]
    decode(blobs[0][0], target=target, raw=blobs[0][1])
    started = time.process_time()
    for blob, raw in blobs:
        decode(blob, target=target, raw=raw)
    return (time.process_time() - started) / len(blobs)


def gpu_decode_lane(paths: Sequence[str], side: int, batch: int = 32) -> dict[str, Any]:
    """nvJPEG decodes (``aesthete.device_lane.decode_jpegs`` with the decoder ``score`` picks) resized to
    the model's input on the GPU: the raw speed of ``score``'s device lane, before its signals and
    bookkeeping. Measured only when the device is CUDA."""
    import torch
    import torch.nn.functional as F

    from aesthete.device_lane import decode_jpegs, pick_decoder

    blobs = [Path(path).read_bytes() for path in paths]
    device = torch.device("cuda")
    decoder, problem = pick_decoder(device)
    if decoder is None:
        raise RuntimeError(f"no JPEG decoder works on {device}: {problem}")

    def lane() -> None:
        for start in range(0, len(blobs), batch):
            for image in decode_jpegs(blobs[start : start + batch], device, decoder):
                F.interpolate(image[None].float(), size=(side, side), mode="bilinear", antialias=True)
        torch.cuda.synchronize()

    lane()  # warm-up: nvJPEG handles and the allocator
    started = time.perf_counter()
    lane()
    return {"img_s": len(blobs) / (time.perf_counter() - started)}
