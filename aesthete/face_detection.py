"""Finding faces and measuring them: where the faces are, whether each eye is open, whether each face is
in focus (what the results mean, :class:`aesthete.faces.Face` and its flags, is :mod:`aesthete.faces`).

Optional: it needs the ``faces`` extra (``pip install aesthete-photo[faces]``), which installs Google's
LiteRT runtime (``ai-edge-litert``, Apache-2.0). The two networks are MediaPipe's, copied byte for byte
from the ``mediapipe`` 0.10.14 wheel on PyPI into ``aesthete/facedata/`` (Apache-2.0; its LICENSE is
beside them; ``docs/faces.md`` says why this runtime and not mediapipe itself, with measurements):

- BlazeFace full-range (``face_detection_full_range_sparse.tflite``, 192x192 input): boxes and six
  keypoints, for faces from about 1/15 of the picture's longer side up (see docs/faces.md).
- Face Mesh (``face_landmark.tflite``, 192x192 input): 468 points of a face, both eyelids included.
- Iris landmarks (``iris_landmark.tflite``, 64x64 input): 71 refined eye-contour points per eye, which
  replace the mesh's eyelid points as MediaPipe's own "refine landmarks" step does. The mesh alone
  barely closes its eyelids on a shut eye (docs/faces.md: 0.098 shut vs 0.150 open; refined, 0.04).

When the runtime is missing, :func:`aesthete.faces.available` is False and :func:`detect_faces` raises
:class:`aesthete.faces.FacesUnavailable`: the caller leaves the face signals absent and says so; nothing
else changes.
Nothing is downloaded, ever. Torch-free, and the runtime is imported only on the first call, so a
decode worker that never looks for faces never loads it.

All geometry is on the upright picture (EXIF orientation already applied by ``aesthete.decode``).
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from aesthete.faces import Face, FacesUnavailable
from aesthete.signals import focus_measure

DATA = Path(__file__).resolve().parent / "facedata"
DETECTOR = DATA / "face_detection_full_range_sparse.tflite"
LANDMARKS = DATA / "face_landmark.tflite"
IRIS = DATA / "iris_landmark.tflite"

# Detector, as MediaPipe's face_detection_full_range.pbtxt configures it: one SSD layer of stride 4 on
# a 192x192 input (48x48 anchors of fixed size 1), sigmoid scores, weighted NMS at IoU 0.3.
_DET_SIZE = 192
_DET_GRID = 48
_NMS_IOU = 0.3
DETECTION_MIN_SCORE = 0.6  # MediaPipe's own threshold for this model
# Landmarks: the face's square region, 1.5x the detector's box (MediaPipe's face_detection_front_
# detection_to_roi), rotated so the eyes are level, resampled to 192x192, pixels 0..1.
_MESH_SIZE = 192
_ROI_SCALE = 1.5
MESH_MIN_SCORE = 0.5  # the mesh's own face-presence score: below, its landmarks are not a face's
_LEVEL_WITHIN = math.radians(2)  # the mesh's eye line and its region's agree (measured: 1.4 upright)
_RELEVEL_RUNS = 5  # the most re-runs for a sideways face (4 were needed at 270 degrees)

# Below this many pixels of ROI side in the working image the eyelids are a few pixels tall, so the
# landmarks are re-run on a crop of the larger ``detail`` image when the caller has one.
SMALL_ROI_SIDE = _MESH_SIZE
# The face box is too small for a focus measure below this side (the measure needs 9 px; give it room).
MIN_SHARPNESS_SIDE = 16

# Eye refinement, as MediaPipe's iris_landmark_left_and_right graph: a square of 2.3x the distance between
# the eye's corners, rotated to level them, resampled to 64x64, pixels 0..1; the model knows only the
# image-left eye, so the image-right one is mirrored in and its points mirrored back.
_IRIS_SIZE = 64
_IRIS_ROI_SCALE = 2.3
# The Face Mesh indices of the iris model's first 16 contour points per eye: the lower lid from corner to
# corner, then the upper lid without the corners (MediaPipe's update_face_landmarks_calculator.cc).
_IRIS_CONTOUR = (
    (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173),
    (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398),
)

# Face Mesh indices (MediaPipe's canonical face model). "Image-left" is the subject's right eye.
# Each eye: (outer corner, inner corner), then three upper-lid points over three lower-lid points.
_EYES = (
    ((33, 133), (160, 159, 158), (144, 145, 153)),  # image-left eye
    ((362, 263), (385, 386, 387), (380, 374, 373)),  # image-right eye
)


_local = threading.local()  # a LiteRT interpreter is not thread-safe: one set per thread


def _interpreters() -> tuple[Any, Any, Any]:
    """The detector, Face Mesh and iris interpreters of this thread."""
    models = getattr(_local, "models", None)
    if models is None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise FacesUnavailable("face signals need the 'faces' extra: pip install 'aesthete-photo[faces]'") from exc
        loaded = []
        with _quiet_stderr():
            for path in (DETECTOR, LANDMARKS, IRIS):
                # One thread: decode workers already keep every core busy.
                interpreter = Interpreter(model_path=str(path), num_threads=1)
                interpreter.allocate_tensors()
                loaded.append(interpreter)
        _local.models = models = tuple(loaded)
    return models


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null for a moment: LiteRT's C++ prints "INFO: Created TensorFlow
    Lite XNNPACK delegate for CPU." on the first allocation in each process (every decode worker), and no
    setting of its Python API or environment silences it. A real error still raises in Python."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _run(interpreter: Any, tensor: np.ndarray) -> list[np.ndarray]:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor[None])
    interpreter.invoke()
    # Output order is by tensor size (largest first) so the code does not depend on tensor names.
    outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    return sorted(outputs, key=lambda a: -a.size)


_ANCHORS = (np.stack(np.meshgrid(np.arange(_DET_GRID), np.arange(_DET_GRID)), -1).reshape(-1, 2) + 0.5) / _DET_GRID


Detection = tuple[np.ndarray, np.ndarray, float]  # box x0 y0 x1 y1, keypoints 6x2 (fractions), score


def locate_faces(picture: Image.Image) -> list[Detection]:
    """The detector alone on an upright RGB picture of any size: (box, keypoints, score) per face, in
    fractions of the picture, so the same for any copy of it. ``detect_faces(..., located=...)`` takes
    them: a caller holding a larger copy finds out whether there is a face at all without first making
    the working-size copy (the face-free photo's whole cost is then this one detector run)."""
    return _detect(picture)


def _detect(picture: Image.Image) -> list[Detection]:
    """(box x0 y0 x1 y1, keypoints 6x2, score) per face, normalised to the picture's width and height."""
    detector = _interpreters()[0]
    width, height = picture.size
    # Letterbox to a square, as MediaPipe does, so faces keep their shape: the picture shrunk to fit the
    # input, the pad centred. Shrinking first, then padding, costs the same for any size of picture.
    scale = _DET_SIZE / max(width, height)
    fit_w, fit_h = max(1, round(width * scale)), max(1, round(height * scale))
    pad_x, pad_y = (_DET_SIZE - fit_w) // 2, (_DET_SIZE - fit_h) // 2
    square = Image.new("RGB", (_DET_SIZE, _DET_SIZE))
    square.paste(picture.resize((fit_w, fit_h), Image.Resampling.BILINEAR), (pad_x, pad_y))
    small = np.asarray(square, dtype=np.float32)
    raw, logits = _run(detector, small / 127.5 - 1.0)
    raw, logits = raw.reshape(-1, 16), logits.reshape(-1)
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100, 100)))
    keep = np.flatnonzero(scores >= DETECTION_MIN_SCORE)
    if keep.size == 0:
        return []  # the common case for photos without people: one small inference, nothing else
    raw, scores, anchors = raw[keep] / _DET_SIZE, scores[keep], _ANCHORS[keep]
    centre = raw[:, :2] + anchors
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], 1)
    points = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None]
    faces = []
    for box, pts, score in _weighted_nms(boxes, points, scores):
        # From the padded square back to fractions of the picture.
        box = (box * _DET_SIZE - [pad_x, pad_y, pad_x, pad_y]) / [fit_w, fit_h, fit_w, fit_h]
        pts = (pts * _DET_SIZE - [pad_x, pad_y]) / [fit_w, fit_h]
        faces.append((np.clip(box, 0.0, 1.0), pts, score))
    return faces


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), 1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], 1)
    return inter / np.maximum(area + areas - inter, 1e-9)


def _weighted_nms(
    boxes: np.ndarray, points: np.ndarray, scores: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression: overlapping candidates are averaged by score."""
    order = np.argsort(-scores)
    boxes, points, scores = boxes[order], points[order], scores[order]
    left = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not left[i]:
            continue
        group = left & (_iou(boxes[i], boxes) > _NMS_IOU)
        group[i] = True
        left &= ~group
        w = scores[group][:, None]
        box = (boxes[group] * w).sum(0) / w.sum()
        pts = (points[group] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, pts, float(scores[i])))
    return out


def _roi(box: np.ndarray, points: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """The mesh's region in pixels: centre x, centre y, side, rotation (radians) that levels the eyes."""
    right_eye, left_eye = points[0] * [width, height], points[1] * [width, height]
    angle = -math.atan2(-(left_eye[1] - right_eye[1]), left_eye[0] - right_eye[0])
    cx, cy = (box[0] + box[2]) / 2 * width, (box[1] + box[3]) / 2 * height
    side = max((box[2] - box[0]) * width, (box[3] - box[1]) * height) * _ROI_SCALE
    return cx, cy, side, angle


def _affine(cx: float, cy: float, side: float, angle: float, size: int) -> tuple[float, ...]:
    """Output pixel (u, v) of a ``size`` square -> input (x, y): rotate by ``angle`` about (cx, cy), scale."""
    scale = side / size
    a, b = math.cos(angle) * scale, -math.sin(angle) * scale
    d, e = -b, a
    half = size / 2
    return a, b, cx - a * half - b * half, d, e, cy - d * half - e * half


def _crop(image: Image.Image, cx: float, cy: float, side: float, angle: float, size: int = _MESH_SIZE) -> np.ndarray:
    """The rotated square (cx, cy, side, angle) resampled to ``size`` x ``size``, pixels 0..1."""
    a, b, c, d, e, f = _affine(cx, cy, side, angle, size)
    resample = Image.Resampling.BILINEAR
    if side / size > 2:  # shrinking a lot: a box-filtered copy first, or bilinear aliases the eyelids away
        factor = int(side / size / 1.5)
        image = image.reduce(factor)
        a, b, c, d, e, f = a / factor, b / factor, c / factor, d / factor, e / factor, f / factor
    warped = image.transform((size, size), Image.Transform.AFFINE, (a, b, c, d, e, f), resample)
    return np.asarray(warped, dtype=np.float32) / 255.0


def _mesh(mesh: Any, image: Image.Image, roi: tuple[float, float, float, float]) -> tuple[float, np.ndarray]:
    """Face Mesh on the region ``roi`` (cx, cy, side, angle) of ``image``: its face-presence score and
    the 468 landmarks in ``image`` pixels."""
    landmarks, presence = _run(mesh, _crop(image, *roi))
    score = float(1.0 / (1.0 + math.exp(-float(np.clip(presence.reshape(-1)[0], -100, 100)))))
    uv = landmarks.reshape(-1, 3)[:, :2].astype(np.float64)
    a, b, c, d, e, f = _affine(*roi, _MESH_SIZE)
    return score, np.stack([a * uv[:, 0] + b * uv[:, 1] + c, d * uv[:, 0] + e * uv[:, 1] + f], 1)


def _refine_eyes(image: Image.Image, points: np.ndarray, iris: Any) -> np.ndarray:
    """``points`` (468 x 2, ``image`` pixels) with each eye's contour replaced by the iris model's."""
    refined = points.copy()
    for side_index, contour in enumerate(_IRIS_CONTOUR):
        outer, inner = points[contour[0]], points[contour[8]]
        left, right = (outer, inner) if side_index == 0 else (inner, outer)  # left to right in the image
        (cx, cy), width = (left + right) / 2, float(np.linalg.norm(right - left))
        if width <= 0:
            continue
        angle = math.atan2(right[1] - left[1], right[0] - left[0])
        side = width * _IRIS_ROI_SCALE
        tensor = _crop(image, cx, cy, side, angle, _IRIS_SIZE)
        mirrored = side_index == 1
        if mirrored:
            tensor = np.ascontiguousarray(tensor[:, ::-1])
        uv = _run(iris, tensor)[0].reshape(-1, 3)[: len(contour), :2].astype(np.float64)
        if mirrored:
            uv[:, 0] = _IRIS_SIZE - uv[:, 0]
        a, b, c, d, e, f = _affine(cx, cy, side, angle, _IRIS_SIZE)
        refined[list(contour)] = np.stack([a * uv[:, 0] + b * uv[:, 1] + c, d * uv[:, 0] + e * uv[:, 1] + f], 1)
    return refined


def eye_openness(landmarks: np.ndarray) -> tuple[float, float]:
    """Openness of the image-left and image-right eye from Face Mesh landmarks (468 x 2 or 3).

    Per eye: the mean of the three vertical eyelid gaps (upper-lid point to the lower-lid point below
    it), divided by the distance between the two eyes' centres (the midpoints of their corners). The
    gaps alone would scale with the face; the eye's own width (the classic eye aspect ratio of
    Soukupova & Cech 2016) shrinks when the head turns, which would inflate the ratio. A wide-open eye
    is ~0.15 (the astronaut); what a shut one gives is in docs/faces.md. Invariant to translation, rotation and scale.
    """
    xy = np.asarray(landmarks, dtype=np.float64)[:, :2]
    centres = [(xy[c0] + xy[c1]) / 2 for (c0, c1), _, _ in _EYES]
    interocular = float(np.linalg.norm(centres[1] - centres[0]))
    if interocular <= 0:
        raise ValueError("eye centres coincide: these are not a face's landmarks")
    out = []
    for _, upper, lower in _EYES:
        gaps = np.linalg.norm(xy[list(upper)] - xy[list(lower)], axis=1)
        out.append(float(gaps.mean() / interocular))
    return out[0], out[1]


def detect_faces(
    rgb: np.ndarray,
    *,
    detail: np.ndarray | Image.Image | None = None,
    photo_sharpness: float | None = None,
    located: list[Detection] | None = None,
) -> list[Face]:
    """Faces in an upright RGB picture at working size (``uint8``, H x W x 3), largest first.

    ``detail``, optional, is the same picture at a higher resolution (any size, same framing; an array
    or a Pillow RGB image, which is used without a copy): the landmarks of faces that are small in
    ``rgb`` are found on a crop of it instead. ``photo_sharpness`` is the whole photo's
    ``signals.technical_signals(...)["sharpness"]``; computed here when None. ``located``: what
    :func:`locate_faces` found on any copy of the picture, so the detector does not run again.
    A photo without faces costs one detector run (~6 ms on one core, docs/faces.md).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an H x W x 3 uint8 RGB array, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    working = Image.fromarray(rgb)
    found = _detect(working) if located is None else located
    if not found:
        return []
    _, mesh, iris = _interpreters()
    detailed = detail if isinstance(detail, Image.Image) or detail is None else Image.fromarray(detail)
    luma = np.asarray(working.convert("L"), dtype=np.float32)
    if photo_sharpness is None:
        photo_sharpness = focus_measure(luma)
    faces = []
    for box, points, score in found:
        cx, cy, side, angle = _roi(box, points, width, height)
        source, k = working, 1.0
        if side < SMALL_ROI_SIDE and detailed is not None and detailed.width > width:
            source, k = detailed, detailed.width / width
        roi = (cx * k, cy * k, side * k, angle)
        landmark_score, points = _mesh(mesh, source, roi)
        # The detector's eye keypoints level a sideways face only partway (a 90-degree turn measured 28-42
        # degrees short), and the mesh's own eye line moves only part of the way towards the truth on each
        # run: re-run it on the region its outer eye corners level until they agree (upright faces: no
        # re-run; 90 degrees: 3-4), as MediaPipe's tracking does from one frame's landmarks to the next.
        for _ in range(_RELEVEL_RUNS):
            levelled = math.atan2(points[263, 1] - points[33, 1], points[263, 0] - points[33, 0])
            if landmark_score < MESH_MIN_SCORE or abs(math.remainder(levelled - roi[3], math.tau)) <= _LEVEL_WITHIN:
                break
            roi = (*roi[:3], levelled)
            landmark_score, points = _mesh(mesh, source, roi)
        eyes: tuple[float | None, float | None] = (None, None)
        if landmark_score >= MESH_MIN_SCORE:
            eyes = eye_openness(_refine_eyes(source, points, iris))
        x0, y0, x1, y1 = (int(round(v)) for v in box * [width, height, width, height])
        sharpness = None
        if min(x1 - x0, y1 - y0) >= MIN_SHARPNESS_SIDE:
            sharpness = focus_measure(luma[y0:y1, x0:x1])
        # (the photo's own sharpness is None when it is too thin to measure)
        relative = sharpness / photo_sharpness if sharpness is not None and photo_sharpness else None
        faces.append(Face(tuple(float(v) for v in box), score, landmark_score, eyes, sharpness, relative))
    faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
    return faces
