"""Build the publishers' reference models with seeded random weights and record their outputs.

Run by hand, in a venv that has the reference code (never a project dependency: pyiqa's code is
PolyForm Noncommercial, and it pulls in much more)::

    python -m venv /tmp/f12-venv   # with torch==2.14.1 torchvision==0.29.1, then:
    pip install pyiqa openai-clip
    HF_HUB_OFFLINE=1 PYTHONPATH=. /tmp/f12-venv/bin/python tests/published/make_fixtures.py

It writes ``tests/published/fixtures.json`` (seed, each publisher file's tensor names/shapes/dtypes,
reference outputs) and the input photos ``tests/published/photo-*.jpg``. The photos are real ones
(scikit-image's bundled ``coffee``, ``rocket``, ``astronaut`` and ``chelsea``), already at each model's
input size so no resampling can differ: 384x576 for TOPIQ, 224x224 for NIMA and CLIP. The reference
reads the same JPEG with Pillow as the test does. ``tests/test_published.py`` regenerates the same
weights from the seed (``seeded.py``), writes them in the publisher's file format, converts them with
aesthete and compares.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
from tests.published.seeded import layout_of, seeded_state  # noqa: E402

SEED = 1212


def _no_pretrained_timm() -> None:
    import timm

    original = timm.create_model
    timm.create_model = lambda *a, **k: original(*a, **{**k, "pretrained": False})


def photos() -> dict[str, Path]:
    from skimage import data

    out = {}
    for name, array, size in (
        ("coffee", data.coffee(), (576, 384)),
        ("rocket", data.rocket(), (576, 384)),
        ("astronaut", data.astronaut(), (224, 224)),
        ("chelsea", data.chelsea(), (224, 224)),
    ):
        image = Image.fromarray(array).convert("RGB")
        if size[0] == size[1]:  # a centred square first, so the 224x224 photo is not warped
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            image = image.crop((left, top, left + side, top + side))
        path = HERE / f"photo-{name}.jpg"
        image.resize(size, Image.Resampling.LANCZOS).save(path, quality=90)
        out[name] = path
    return out


def tensor_of(path: Path) -> torch.Tensor:
    """[0, 1] RGB (1, 3, H, W), as pyiqa's and our tests read a photo."""
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0).contiguous()


def topiq(images: list[Path]) -> dict:
    from pyiqa.archs.topiq_arch import CFANet

    net = CFANet(
        semantic_model_name="resnet50",
        model_name="cfanet_iaa_ava_res50",
        use_ref=False,
        inter_dim=512,
        num_heads=8,
        num_class=10,
        test_img_size=384,
        pretrained=False,
    )
    layout = layout_of(net.state_dict())
    net.load_state_dict(seeded_state(layout, SEED), strict=True)
    net.eval()
    with torch.no_grad():
        dists = [net(tensor_of(p), return_mos=False, return_dist=True)[0].tolist() for p in images]
    return {"layout": layout, "wrapper": "params", "photos": [p.name for p in images], "probs": dists}


def nima(images: list[Path]) -> dict:
    from pyiqa.archs.nima_arch import NIMA

    net = NIMA(base_model_name="vgg16", num_classes=10, pretrained=False)
    layout = layout_of(net.state_dict())
    net.load_state_dict(seeded_state(layout, SEED), strict=True)
    net.eval()
    with torch.no_grad():
        dists = [net(tensor_of(p), return_mos=False, return_dist=True)[0].tolist() for p in images]
    return {"layout": layout, "wrapper": "params", "photos": [p.name for p in images], "probs": dists}


def laion(images: list[Path]) -> dict:
    from clip.model import CLIP
    from pyiqa.archs.arch_util import clip_preprocess_tensor
    from pyiqa.archs.laion_aes_arch import MLP

    # OpenAI's ViT-L/14 configuration (clip/model.py build_model reads the same from the archive).
    clip_model = CLIP(768, 224, 24, 1024, 14, 77, 49408, 768, 12, 12)
    clip_layout = [[n, s, "float16"] for n, s, _ in layout_of(clip_model.state_dict())]
    clip_state = seeded_state(clip_layout, SEED)  # fp16 like OpenAI's archive
    clip_model.load_state_dict({k: v.float() for k, v in clip_state.items()}, strict=True)
    clip_model.eval()  # fp32 on the CPU, as clip.load does there
    head = MLP(768)
    head_layout = layout_of(head.state_dict())
    head.load_state_dict(seeded_state(head_layout, SEED), strict=True)
    head.eval()
    scores = []
    with torch.no_grad():  # LAIONAes.forward in eval, without clip.load's download
        for path in images:
            image = clip_preprocess_tensor(tensor_of(path), clip_model)
            embedding = torch.nn.functional.normalize(clip_model.encode_image(image).float(), p=2, dim=-1)
            scores.append(head(embedding).item())
    return {"layout": head_layout, "clip_layout": clip_layout, "photos": [p.name for p in images], "scores": scores}


def main() -> None:
    _no_pretrained_timm()
    torch.manual_seed(0)
    shots = photos()
    fixtures = {
        "seed": SEED,
        "torch": torch.__version__,
        "topiq-iaa-r50-ava": topiq([shots["coffee"], shots["rocket"]]),
        "nima-vgg16-ava": nima([shots["astronaut"], shots["chelsea"]]),
        "laion-aesthetic-v2": laion([shots["astronaut"]]),
    }
    (HERE / "fixtures.json").write_text(json.dumps(fixtures, separators=(",", ":")) + "\n", encoding="utf-8")
    print("wrote", HERE / "fixtures.json")


if __name__ == "__main__":
    main()
