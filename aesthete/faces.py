"""Faces and eyes, as aesthete records and judges them: the :class:`Face` record, the flags it raises
(eyes closed, face soft) and their thresholds, and whether the ``faces`` extra is installed.

Finding and measuring faces is :mod:`aesthete.face_detection` (MediaPipe's networks on Google's LiteRT
runtime, the optional ``faces`` extra: ``pip install aesthete-photo[faces]``; ``docs/faces.md``). This
half imports no numpy, Pillow or runtime, so that `rank`, `show` and a rescan, which read stored faces,
start without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aesthete.errors import AestheteError

# Flag thresholds. See docs/faces.md for how they were set and what they rest on.
EYE_CLOSED_BELOW = 0.09  # openness: between painted-shut (<= 0.071) and open blurred (>= 0.110) eyes
FACE_SOFT_BELOW = 0.5  # relative face sharpness: a face blurred by ~1.5 px at working size (docs/faces.md)
FACE_FLAGS = ("eyes-closed", "face-soft")  # what face_flags can raise; stored with the technical flags

# What the store records in ``images.faces_looked`` for a photo looked at by this pipeline (NULL: never
# looked). A change to the networks or to what is measured gets a new value, so code can tell old results.
VERSION = "mediapipe-0.10.14/full-range-sparse+face-mesh+iris/1"


class FacesUnavailable(AestheteError):
    """The ``faces`` extra (the LiteRT runtime) is not installed."""


@dataclass(frozen=True)
class Face:
    """One detected face. Coordinates are fractions of the upright picture's width and height."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1 of the detector's box, 0..1
    confidence: float  # the detector's score, 0..1 (face_detection.DETECTION_MIN_SCORE and up)
    landmark_confidence: float  # the mesh's face-presence score, 0..1
    eyes: tuple[float | None, float | None]  # openness of the image-left and image-right eye
    sharpness: float | None  # signals.focus_measure inside the box at working size; None if too small
    relative_sharpness: float | None  # sharpness / the whole photo's; None when either is unknown

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded: what the store keeps per face."""
        return {
            "box": [round(v, 4) for v in self.box],
            "confidence": round(self.confidence, 3),
            "landmark_confidence": round(self.landmark_confidence, 3),
            "eyes": [None if e is None else round(e, 4) for e in self.eyes],
            "sharpness": None if self.sharpness is None else round(self.sharpness, 3),
            "relative_sharpness": None if self.relative_sharpness is None else round(self.relative_sharpness, 3),
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Face:
        """The face :meth:`to_dict` stored (as the store reads it back)."""
        eyes = record.get("eyes") or (None, None)
        return cls(
            tuple(record["box"]),
            record["confidence"],
            record.get("landmark_confidence", 0.0),
            (eyes[0], eyes[1]),
            record.get("sharpness"),
            record.get("relative_sharpness"),
        )

    @property
    def eyes_open(self) -> bool:
        """Both eyes measured and both at or above the threshold: a wink or an unmeasured eye is not open."""
        return all(e is not None and e >= EYE_CLOSED_BELOW for e in self.eyes)

    @property
    def eyes_closed(self) -> bool:
        """Both eyes measured and both below the threshold (one shut eye is a wink, not a blink)."""
        return all(e is not None and e < EYE_CLOSED_BELOW for e in self.eyes)

    @property
    def soft(self) -> bool:
        return self.relative_sharpness is not None and self.relative_sharpness < FACE_SOFT_BELOW


def face_flags(faces: list[Face]) -> list[str]:
    """``eyes-closed`` when any face has both eyes shut, ``face-soft`` when any face is soft."""
    flags = []
    if any(f.eyes_closed for f in faces):
        flags.append("eyes-closed")
    if any(f.soft for f in faces):
        flags.append("face-soft")
    return flags


def how_to_look(where: str) -> str:
    """How to get faces looked for in photos never looked at (``where``: "its folder", ...): the next
    ``score`` there does it, once the extra is installed (it may be: a photo the ``--decode device`` lane
    decoded was not looked at either)."""
    again = f"run `aesthete score` on {where} again"
    return again if available() else f"install the faces extra (pip install 'aesthete-photo[faces]') and {again}"


@lru_cache(maxsize=1)
def available() -> bool:
    """Whether the runtime is installed (checked without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("ai_edge_litert") is not None
    except (ImportError, ValueError):
        return False
