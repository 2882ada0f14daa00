"""The naive pipeline: full decode, resize, NCHW float32, batch 1, same model and weights."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any


def naive(checkpoint: str, paths: Sequence[str], device: str) -> dict[str, Any]:
    """What a user would write: full decode, resize, NCHW float32 tensor, one photo at a time, the same
    model and weights (fp32, default memory layout, torch's default threads)."""
    import numpy as np
    import torch
    from PIL import Image

    from aesthete.checkpoint import load_model
    from aesthete.engine import pick_device

    torch_device = pick_device(device)
    model = load_model(checkpoint).to(torch_device).eval()
    size = model.policy.size
    mean = torch.tensor(model.policy.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.policy.std).view(1, 3, 1, 1)

    def one(path: str) -> float:
        image = Image.open(path).convert("RGB")
        aspect = torch.tensor([image.width / image.height])
        resized = image.resize((size, size), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255).permute(2, 0, 1).unsqueeze(0)
        x = ((x - mean) / std).to(torch_device)
        with torch.no_grad():
            probs = model(x, aspect.to(torch_device))["probs"][0].cpu()
        return float((probs * model.bin_values).sum())

    one(paths[0])  # warm-up
    started = time.perf_counter()
    for path in paths:
        one(path)
    return {"img_s": len(paths) / (time.perf_counter() - started)}
