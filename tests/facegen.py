"""Portraits for the face tests, built from scikit-image's ``astronaut`` (NASA, public domain, 512x512):
her eyes open as photographed, the same picture with her eyes painted shut, with her face blurred,
and a photo without a face. Deterministic, in memory; write them with :func:`photoset.write_photo`.

The eye and face positions below were measured once on the picture (Face Mesh landmarks through
``aesthete.faces``): painting and blurring use them, so the pictures do not depend on the detector the
tests check.
"""

from __future__ import annotations

from functools import lru_cache

from imagegen import scene
from PIL import Image, ImageDraw, ImageFilter

SIZE = 512
# The astronaut's eyes, measured on the picture through the mesh: corners (x) and eyelids (y), in pixels.
ASTRONAUT_EYES = (((194, 214), (97, 104)), ((236, 257), (99, 107)))
FACE = (172, 67, 277, 172)  # her face, as the detector boxes it (x 0.34-0.54, y 0.13-0.34 of the frame)
SOFT_RADIUS = 2.0  # px: relative face sharpness ~0.33 (docs/faces.md), eyes still read open


@lru_cache(maxsize=1)
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def eyes_open() -> Image.Image:
    return astronaut().copy()


def paint_eyes_shut(picture: Image.Image) -> Image.Image:
    """The astronaut (``picture``, framed as the original) with each eye covered by the skin just below
    it and a lash line drawn across: a shut eye as the mesh and the iris model see one (openness
    0.04-0.07, docs/faces.md). A new image; ``picture`` is left as it is."""
    picture = picture.copy()
    draw = ImageDraw.Draw(picture)
    for (x0, x1), (y0, y1) in ASTRONAUT_EYES:
        x0, x1, y0, y1 = x0 - 3, x1 + 3, y0 - 4, y1 + 3
        skin = picture.crop((x0, y1 + 4, x1, y1 + 4 + (y1 - y0))).filter(ImageFilter.GaussianBlur(1))
        picture.paste(skin, (x0, y0))
        draw.line([(x0 + 3, (y0 + y1) / 2 + 1), (x1 - 3, (y0 + y1) / 2 + 1)], fill=(60, 40, 35), width=2)
    return picture


def eyes_closed() -> Image.Image:
    return paint_eyes_shut(astronaut())


def face_soft() -> Image.Image:
    """Her face blurred (Gaussian, :data:`SOFT_RADIUS` px), the rest as sharp as photographed."""
    picture = astronaut().copy()
    picture.paste(picture.crop(FACE).filter(ImageFilter.GaussianBlur(SOFT_RADIUS)), FACE[:2])
    return picture


def no_face(seed: int = 11) -> Image.Image:
    return scene(seed, (SIZE, SIZE * 3 // 4))
