"""A generated shoot with bursts, for the grouping, cull, export, XMP and report tests.

:func:`write_shoot` writes small JPEGs whose expected grouping is known: one burst of the same scene
shifted by a few pixels, re-exposed by +-1 EV and re-cropped by 5%; a second scene seconds later; the
first scene again an hour later and from another camera at the same second; photos without EXIF whose
file times are seconds apart; and unrelated scenes. :func:`add_scores` gives the photos chosen aesthetic
means (a real 10-bin distribution around each), so selection tests can say exactly what must be picked.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from imagegen import encode, exposed, make_exif, scene
from PIL import Image

from aesthete.store import ModelKey, Store

SIZE = (320, 240)
_PX = 0.7 / SIZE[0]  # one pixel of the frame, in the unit-scene coordinates of imagegen.scene
KEY = ModelKey("nima", "test-weights", "test-preprocess")

# name -> (scene seed, shift in px, EV, crop fraction, EXIF time or None, camera model)
SHOOT = {
    "a1.jpg": (1, 0, 0.0, 0.0, "2024:05:01 12:00:00", "Canon EOS R5"),
    "a2.jpg": (1, 4, 0.0, 0.0, "2024:05:01 12:00:00", "Canon EOS R5"),
    "a3.jpg": (1, 4, 1.0, 0.0, "2024:05:01 12:00:01", "Canon EOS R5"),
    "a4.jpg": (1, 0, -1.0, 0.0, "2024:05:01 12:00:02", "Canon EOS R5"),
    "a5.jpg": (1, 0, 0.0, 0.05, "2024:05:01 12:00:04", "Canon EOS R5"),
    "b1.jpg": (2, 0, 0.0, 0.0, "2024:05:01 12:00:06", "Canon EOS R5"),
    "b2.jpg": (2, 3, 0.0, 0.0, "2024:05:01 12:00:08", "Canon EOS R5"),
    "a_later.jpg": (1, 0, 0.0, 0.0, "2024:05:01 13:00:00", "Canon EOS R5"),
    "a_other_camera.jpg": (1, 0, 0.0, 0.0, "2024:05:01 12:00:01", "Z 6"),
    "c1.jpg": (3, 0, 0.0, 0.0, None, None),
    "c2.jpg": (3, 4, 0.0, 0.0, None, None),
    "c_later.jpg": (3, 0, -1.0, 0.0, None, None),
    "d.jpg": (4, 0, 0.0, 0.0, "2024:05:01 14:00:00", "Canon EOS R5"),
    "e.jpg": (5, 0, 0.0, 0.0, "2024:05:01 14:00:03", "Canon EOS R5"),
}
# File times for the photos without EXIF: c1 and c2 two seconds apart, c_later an hour on.
NO_EXIF_MTIMES = {"c1.jpg": 1_714_564_800, "c2.jpg": 1_714_564_802, "c_later.jpg": 1_714_568_400}
EXPECTED_GROUPS = [{"a1.jpg", "a2.jpg", "a3.jpg", "a4.jpg", "a5.jpg"}, {"b1.jpg", "b2.jpg"}, {"c1.jpg", "c2.jpg"}]


def frame(seed: int, shift_px: int = 0, ev: float = 0.0, crop: float = 0.0) -> Image.Image:
    """The scene ``seed`` framed like a burst frame: moved by ``shift_px`` (and half that down), re-cropped
    by ``crop`` of each side's length, ``ev`` stops brighter."""
    dx, dy, margin = shift_px * _PX, shift_px * _PX / 2, 0.7 * crop / 2
    image = scene(seed, SIZE, view=(0.1 + dx + margin, 0.1 + dy + margin, 0.8 + dx - margin, 0.8 + dy - margin))
    return exposed(image, ev) if ev else image


def write_photo(path: Path, image: Image.Image, taken: str | None, camera: str | None, **exif: object) -> Path:
    """A JPEG with camera EXIF (``taken`` as 'YYYY:MM:DD HH:MM:SS'), or none when ``taken`` is None."""
    make = {"Z 6": "Nikon"}.get(camera or "", "Canon")
    params = {"exif": make_exif(make=make, model=camera, datetime_original=taken, **exif)} if taken else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(image, "JPEG", quality=90, **params))
    return path


def write_shoot(folder: Path) -> Path:
    for name, (seed, shift, ev, crop, taken, camera) in SHOOT.items():
        write_photo(folder / name, frame(seed, shift, ev, crop), taken, camera)
    for name, seconds in NO_EXIF_MTIMES.items():
        os.utime(folder / name, (seconds, seconds))
    return folder


def add_scores(store: Store, means: dict[str, float], spread: float = 1.5) -> None:
    """Store a 10-bin score for each named photo: a discretised normal around ``means[name]``."""
    bins = np.arange(1, 11)
    rows = []
    for photo in store.photos(None):
        name = Path(photo["path"]).name
        if name not in means:
            continue
        dist = np.exp(-0.5 * ((bins - means[name]) / spread) ** 2)
        dist /= dist.sum()
        mean = float(dist @ bins)
        rows.append({
            "content_hash": photo["content_hash"], "model": KEY.model, "weights_id": KEY.weights_id,
            "preprocess": KEY.preprocess, "dist": json.dumps(dist.round(6).tolist()), "mean": mean,
            "std": float(np.sqrt(dist @ (bins - mean) ** 2)), "p_high": float(dist[5:].sum()),
            "scored_at": "2024-06-01T00:00:00+00:00",
        })  # fmt: skip
    store.write(scores=rows)


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """(sha256, mtime_ns) of every photo under ``folder``: what no command may change."""
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png")
    }
