"""What a decode worker does with one file: read it once, hash, read EXIF, decode at reduced size,
compute technical signals (faces and eyes too, with the ``faces`` extra), and cut the model's input.
Torch-free, so workers start fast and light.

Each worker holds a read-only connection to the database: when a file's content is already known
(a moved or renamed photo), it returns at once without decoding.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any

import numpy as np

from aesthete import interrupts
from aesthete.decode import DecodeError, decode, plain_jpeg
from aesthete.exif import read_exif
from aesthete.fingerprint import content_hash
from aesthete.formats import raw_format
from aesthete.input_policy import InputPolicy
from aesthete.jobs import FileJob, FileResult, WorkerConfig
from aesthete.pixel_slots import WorkerSlots
from aesthete.signals import VERSION as SIGNALS_VERSION
from aesthete.signals import (
    flags,
    perceptual_hash,
    technical_quality,
    technical_signals,
    working_gray,
    working_rgb,
    working_size,
)
from aesthete.store import StoreReader

WORKER_NICENESS = 19  # added to a decode worker's niceness when a model runs (see init_worker)
# glibc malloc: blocks from this size up are mapped afresh and unmapped on free; free memory above this
# much at the heap's top goes back to the system (see keep_freed_memory).
MMAP_THRESHOLD_BYTES = 4 << 20
TRIM_THRESHOLD_BYTES = 32 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MAX_FILE_BYTES = 1 << 30  # nothing a camera writes is 1 GiB; refuse rather than exhaust memory
TOO_ELONGATED = "too-elongated"  # a failure kind: a strip no model input can hold (InputPolicy.too_elongated)


_config: WorkerConfig | None = None
_policy: InputPolicy | None = None
_known: StoreReader | None = None
_slots: WorkerSlots | None = None  # where this worker leaves model inputs, when score lent it slots


def init_worker(config: WorkerConfig) -> None:
    """Pool initializer. Workers ignore Ctrl-C: the main process decides how a run stops, and die with it
    (a ``kill -9`` of ``score`` must not leave workers blocked on the pool's queue forever, each holding
    memory and the database open)."""
    global _config, _policy, _known, _slots
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    interrupts.release_in_child()
    if config.parent_pid is not None:
        die_with_parent(config.parent_pid)
        _close_inherited_database(config.db_path)
    if config.policy is not None and hasattr(os, "nice"):  # (Windows has no nice)
        # A model runs beside the workers: let it come first. A worker that runs only where a core is free
        # never preempts one of the model's threads mid-layer (the others would wait for it). Measured on
        # 2 cores: 0.2-MP photos ~9% faster end to end, 24-MP ones unchanged.
        os.nice(WORKER_NICENESS)
    keep_freed_memory()
    _config = config
    _policy = InputPolicy.from_dict(config.policy) if config.policy else None
    _known = StoreReader(config.db_path)
    _slots = None
    if config.pixel_slots:
        # The block may be gone (removed by hand, or by a run in another PID namespace): then the pipe.
        with contextlib.suppress(OSError):
            _slots = WorkerSlots(*config.pixel_slots)


def keep_freed_memory() -> bool:
    """Let glibc reuse freed memory for the per-photo arrays instead of returning it to the system.

    The signals of one working-size photo allocate some thirty 0.2-0.7 MB numpy temporaries. With glibc's
    defaults the heap's top is trimmed and regrown, or each array is mapped afresh, so every one costs
    page faults: ~1,550 a photo, against ~9 after this (tests/test_signals.py). Measured on 2 cores, one
    worker on 300 0.2-MP photos with faces: 16.6-16.7 core-ms a photo before, 12.9-13.9 after; 24-MP
    photos unchanged (~60). A worker then keeps up to TRIM_THRESHOLD_BYTES of freed heap. False, changing nothing, off
    glibc or when the user set glibc's own MALLOC_* variables."""
    import ctypes

    try:
        libc_version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError, AttributeError):  # no such name: not glibc
        libc_version = ""
    user_set = any(k.startswith("MALLOC_") for k in os.environ) or "malloc" in os.environ.get("GLIBC_TUNABLES", "")
    if not libc_version.startswith("glibc") or user_set:
        return False
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        )
    except (OSError, AttributeError):
        return False


PARENT_POLL_S = 0.5  # how often the fallback watch looks for its parent (a sleeping thread costs nothing)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` ends, however it ends (``kill -9`` included).

    Linux: the kernel sends SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``). Everywhere, and
    as a second line on Linux: a daemon thread that exits once the parent is gone, seen either as a new
    parent pid (POSIX re-parents orphans) or as multiprocessing's parent sentinel firing (Windows' parent
    process handle; a pipe end elsewhere)."""
    if sys.platform.startswith("linux"):
        _set_pdeathsig(signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the above took effect
        os._exit(1)
    watch = threading.Thread(target=_watch_parent, args=(parent_pid,), name="aesthete-parent-watch", daemon=True)
    watch.start()


def _set_pdeathsig(signum: int) -> bool:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no prctl (e.g. a libc without it): the watch thread still works
        return False


def _watch_parent(parent_pid: int) -> None:
    parent = multiprocessing.parent_process()
    while True:
        time.sleep(PARENT_POLL_S)
        if os.getppid() != parent_pid or (parent is not None and not parent.is_alive()):
            os._exit(1)


def _close_inherited_database(db_path: str | None) -> None:
    """A forked worker inherits the main process's descriptors on the database (its writer's connection):
    point them at /dev/null, so a worker never keeps the database (or its WAL) open on the main process's
    behalf. Not closed: the inherited SQLite state still names those numbers, and a number freed here could be
    reused by the worker's own read-only connection and later closed under it. Linux only (/proc); spawned
    workers inherit none."""
    if not db_path or not os.path.isdir("/proc/self/fd"):
        return
    database = os.path.realpath(db_path)
    names = {database, database + "-wal", database + "-shm", database + "-journal"}
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for entry in os.listdir("/proc/self/fd"):
            try:
                if int(entry) != null and os.readlink(f"/proc/self/fd/{entry}") in names:
                    os.dup2(null, int(entry))
            except OSError:  # closed meanwhile (the listing's own descriptor)
                continue
    finally:
        os.close(null)


def decode_target(policy: InputPolicy | None) -> Any:
    """Smallest decode size serving both the model and the signals' working size."""

    def target(width: int, height: int) -> tuple[int, int]:
        need_w, need_h = working_size(width, height)
        if policy is not None:
            model_w, model_h = policy.decode_size(width, height)
            need_w, need_h = max(need_w, model_w), max(need_h, model_h)
        return min(need_w, width), min(need_h, height)

    return target


def process_files(jobs: list[FileJob]) -> list[FileResult]:
    """:func:`process_file` of each job: one task for a few files, so that the pool's messages and the
    main process's bookkeeping are paid once for them (``aesthete.pipeline._DecodePool``)."""
    return [process_file(job) for job in jobs]


def process_file(job: FileJob) -> FileResult:
    """Never raises for bad input: every failure comes back as ``error_kind`` + a one-line ``error``."""
    assert _config is not None, "init_worker was not called"
    result = FileResult(job.path, job.size, job.mtime_ns, fill=job.fill)
    try:
        with open(job.path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            if stat.st_size > MAX_FILE_BYTES:
                return _fail(result, "too-large", f"file is {stat.st_size / 2**30:.1f} GiB")
            data = handle.read()
    except OSError as exc:
        kind = "vanished" if isinstance(exc, FileNotFoundError) else "unreadable"
        return _fail(result, kind, exc.strerror or str(exc))
    # The file may have changed since discovery: record what was actually read.
    result.size, result.mtime_ns = len(data), stat.st_mtime_ns
    if not data:
        return _fail(result, "empty", "file is empty (0 bytes)")
    digest = content_hash(data)
    result.content_hash = digest
    assert _known is not None
    # A known photo whose faces were never looked for, or whose signals an earlier aesthete measured, is
    # decoded again for its signals and faces (and only those).
    known = _known.has_image(digest, signals_version=SIGNALS_VERSION, faces=_config.faces)
    need_image = _config.rescore or not known
    done = _known.has_embedding if _config.embed_only else _known.has_score
    need_score = not job.fill and _policy is not None and (_config.rescore or not done(digest, _config.key))
    if not (need_image or need_score):
        return result
    if job.device_lane and need_score:
        plain = plain_jpeg(data, decode_target(_policy))
        if plain is not None and _policy.too_elongated(plain.width, plain.height) is None:  # else refused below
            result.jpeg, result.orientation, result.aspect = plain.data, plain.orientation, plain.width / plain.height
            if need_image:
                result.image = photo_facts(digest, plain.width, plain.height, "JPEG", data)
            return result
    try:
        decoded = decode(data, target=decode_target(_policy if need_score else None), raw=raw_format(job.path))
        if need_score and (reason := _policy.too_elongated(decoded.width, decoded.height)):
            return _fail(result, TOO_ELONGATED, reason)
        if need_image:
            result.image = image_row(digest, decoded, data, faces=_config.faces)
        if need_score:
            result.pixels = _policy.prepare(decoded.image)
            result.aspect = decoded.width / decoded.height
            if job.slot is not None and _slots is not None and _slots.put(job.slot, result.pixels):
                result.pixels, result.pixels_shape = None, result.pixels.shape
    except DecodeError as exc:
        return _fail(result, exc.kind, str(exc))
    except Exception as exc:  # the last line of defence: one bad file never stops a run
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        return _fail(result, "decode-error", f"{exc.__class__.__name__}: {first_line}")
    result.notes = decoded.notes
    return result


def image_row(digest: str, decoded: Any, data: bytes, *, faces: bool = False) -> dict[str, Any]:
    """The ``images`` row for a decoded photo: size, EXIF, technical signals, perceptual hash and, with
    ``faces``, the faces (:func:`face_columns`); without, the face columns are NULL (never looked)."""
    gray = working_gray(decoded.image)  # shared by the signals and the hash (a resize, ~1 ms)
    signals = technical_signals(gray)
    found = face_columns(decoded, signals["sharpness"]) if faces else None
    return {
        **photo_facts(digest, decoded.width, decoded.height, decoded.format, data),
        **signal_columns(signals, perceptual_hash(gray), decoded.width, decoded.height, found),
    }


def photo_facts(digest: str, width: int, height: int, fmt: str, data: bytes) -> dict[str, Any]:
    """The ``images`` columns known without the pixels: content hash, size, format and EXIF."""
    return {"content_hash": digest, "width": width, "height": height, "format": fmt, **read_exif(data).to_dict()}


def signal_columns(
    signals: dict[str, float | None], phash: str, width: int, height: int, found: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``images`` columns measured on the pixels: the technical signals, the quality and flags they
    give, the perceptual hash, the version of them all, and the face columns (``found``, from
    :func:`face_columns`; NULL without)."""
    raised = flags(signals) + (found.pop("flags") if found else [])
    return {
        **signals,
        "signals_version": SIGNALS_VERSION,
        "technical": technical_quality(signals, width, height),
        "phash": phash,
        "flags": json.dumps(raised),
        **(found or {"faces": None, "face_count": None, "faces_looked": None}),
    }


def face_columns(decoded: Any, photo_sharpness: float | None) -> dict[str, Any] | None:
    """``faces``, ``face_count``, ``faces_looked`` and the face ``flags`` of a decoded photo, or None when
    the face stage failed (a broken runtime must cost the faces, never the photo; the note says why).

    The detector looks at the decoded image itself (it shrinks any picture to its 192-px input, and its
    boxes are fractions of the picture): a photo without faces, the common case, then costs that one
    run and no working-size colour copy (~3 ms of the ~8 ms the face stage otherwise cost, bench/faces.py).
    Faces found are measured on the working-size picture, as the other signals are, with the decoded
    image, when larger (the reduced-size decode is at least the working size, larger when the model
    needs more), as the ``detail`` the landmarks of small faces are read from: no second decode."""
    from aesthete.face_detection import detect_faces, locate_faces
    from aesthete.faces import VERSION, face_flags

    image = decoded.image
    try:
        located = locate_faces(image)
        found = []
        if located:
            rgb = working_rgb(image)
            detail = image if image.width > rgb.width else None
            found = detect_faces(np.asarray(rgb), detail=detail, photo_sharpness=photo_sharpness, located=located)
    except Exception as exc:  # FacesUnavailable, or the runtime failing on this picture
        first_line = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        decoded.notes.append(f"faces not looked for: {first_line}")
        return None
    return {
        "faces": json.dumps([face.to_dict() for face in found]),
        "face_count": len(found),
        "faces_looked": VERSION,
        "flags": face_flags(found),
    }


def _fail(result: FileResult, kind: str, reason: str) -> FileResult:
    result.error_kind, result.error = kind, reason.strip() or kind
    return result
