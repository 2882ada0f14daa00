"""Portraits for the face tests, built from scikit-image's ``astronaut`` (NASA, public domain, 512x512):
her eyes open as photographed, the same picture with her eyes painted shut, with her face blurred,
and a photo without a face. Deterministic, in memory; write them with :func:`photoset.write_photo`.

The boxes below were measured on the picture (Face Mesh landmarks through ``aesthete.faces`` on the
original, rounded outwards): painting and blurring use them, so the tests do not depend on the detector
they check.
"""

from __future__ import annotations

from functools import lru_cache

from imagegen import scene
from PIL import Image, ImageDraw, ImageFilter

SIZE = 512
# Each eye (image-left, image-right) as (x0, y0, x1, y1) in the 512x512 picture: corners to corners, lid to lid.
EYES = ((193, 96, 215, 105), (235, 98, 258, 108))
FACE = (172, 67, 277, 172)  # her face, as the detector boxes it (x 0.34-0.54, y 0.13-0.34 of the frame)
SOFT_RADIUS = 2.0  # px: relative face sharpness ~0.33 (docs/faces.md), eyes still read open


@lru_cache(maxsize=1)
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def eyes_open() -> Image.Image:
    return astronaut().copy()


def eyes_closed() -> Image.Image:
    """Each eye covered with the skin just below it, and a dark lash line along where the lids meet:
    a closed eye as the mesh sees one (openness below ``faces.EYE_CLOSED_BELOW``)."""
    picture = astronaut().copy()
    draw = ImageDraw.Draw(picture)
    for x0, y0, x1, y1 in EYES:
        pad = 3
        box = (x0 - pad, y0 - pad, x1 + pad, y1 + pad)
        height = box[3] - box[1]
        skin = picture.crop((box[0], box[3] + 2, box[2], box[3] + 2 + height))
        picture.paste(skin.filter(ImageFilter.GaussianBlur(1)), box[:2])
        middle = (y0 + y1) // 2 + 2
        draw.line([(x0, middle - 1), ((x0 + x1) // 2, middle + 1), (x1, middle - 1)], fill=(60, 40, 35), width=2)
    return picture


def face_soft() -> Image.Image:
    """Her face blurred (Gaussian, :data:`SOFT_RADIUS` px), the rest as sharp as photographed."""
    picture = astronaut().copy()
    picture.paste(picture.crop(FACE).filter(ImageFilter.GaussianBlur(SOFT_RADIUS)), FACE[:2])
    return picture


def no_face(seed: int = 11) -> Image.Image:
    return scene(seed, (SIZE, SIZE * 3 // 4))
