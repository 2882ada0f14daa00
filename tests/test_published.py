"""The published checkpoints: pull (file:// and a 127.0.0.1 server), licence acceptance, conversion
from the publishers' exact file formats, ``add --like``, and equivalence with the publishers' reference
code (pyiqa, OpenAI CLIP + LAION's head) on real photos.

The reference outputs in ``published/fixtures.json`` were written by ``published/make_fixtures.py``
(run by hand in a venv with pyiqa and openai-clip). Here the same seeded weights are regenerated from
tensor names and shapes alone (``published/seeded.py``), saved in each publisher's file format, pulled
or added and converted by aesthete, and run on the same photos: outputs must agree to 1e-4 in fp32.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from aesthete import weights
from aesthete.checkpoint import CheckpointError, load_model, read_meta
from aesthete.cli.weights import app
from aesthete.convert import read_torchscript_tensors
from tests.published.seeded import seeded_state

HERE = Path(__file__).resolve().parent / "published"
FIXTURES = json.loads((HERE / "fixtures.json").read_text(encoding="utf-8"))
SEED = FIXTURES["seed"]
ROOT = Path(__file__).resolve().parent.parent
PROJECT_TOML = ROOT / "weights.toml"


def photo(name: str, policy_mean: tuple, policy_std: tuple) -> torch.Tensor:
    pixels = np.asarray(Image.open(HERE / name).convert("RGB"), dtype=np.float32) / 255.0
    x = torch.from_numpy(pixels).permute(2, 0, 1).unsqueeze(0)
    mean, std = torch.tensor(policy_mean).view(1, 3, 1, 1), torch.tensor(policy_std).view(1, 3, 1, 1)
    return (x - mean) / std


def pyiqa_file(tmp_path: Path, name: str) -> Path:
    """The publisher's format: a pickled state dict wrapped in ``params`` (BasicSR's convention)."""
    fixture = FIXTURES[name]
    path = tmp_path / f"{name}.pth"
    torch.save({fixture["wrapper"]: seeded_state(fixture["layout"], SEED)}, path)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """The real weights.toml with chosen entries' url (and digest) pointed at test files."""

    def write(urls: dict[str, tuple[str, str]]) -> None:
        text = PROJECT_TOML.read_text(encoding="utf-8")
        for name, (url, digest) in urls.items():
            start = text.index(f"[weights.{name}]")
            end = text.find("\n[weights.", start + 1)
            end = len(text) if end < 0 else end
            table = []
            for line in text[start:end].splitlines():
                if line.startswith("url = "):
                    line = f'url = "{url}"'
                elif line.startswith(("sha256 = ", "sha256_prefix = ")):
                    line = f'sha256 = "{digest}"'
                elif line.startswith("size = "):
                    continue
                table.append(line)
            text = text[:start] + "\n".join(table) + "\n" + text[end:]
        path = tmp_path / "weights.toml"
        path.write_text(text, encoding="utf-8")
        monkeypatch.setattr(weights, "project_registry_path", lambda: path)

    return write


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def serve(path: Path) -> str:
        (root / path.name).write_bytes(path.read_bytes())
        return f"http://127.0.0.1:{httpd.server_address[1]}/{path.name}"

    yield serve
    httpd.shutdown()
    httpd.server_close()


def cache_names() -> list[str]:
    from aesthete import paths

    folder = paths.weights_cache_dir(create=False)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_topiq_pull_from_loopback_licence_hash_and_equivalence(
    tmp_path: Path, project: Callable, served: Callable[[Path], str]
) -> None:
    publisher = pyiqa_file(tmp_path, "topiq-iaa-r50-ava")
    url = served(publisher)
    project({"topiq-iaa-r50-ava": (url, "0" * 64)})  # a wrong digest first
    # A non-commercial licence not accepted: refused before any byte is fetched.
    with pytest.raises(weights.LicenseNotAccepted, match="CC-BY-NC-SA-4.0.*--accept-license"):
        weights.pull("topiq-iaa-r50-ava")
    assert cache_names() == []
    result = CliRunner().invoke(app, ["pull", "topiq-iaa-r50-ava"])
    assert result.exit_code == 2 and "non-commercial" in result.output and cache_names() == []
    with pytest.raises(weights.ChecksumMismatch, match="nothing was cached"):
        weights.pull("topiq-iaa-r50-ava", accept_license=True)
    assert [n for n in cache_names() if not n.endswith(".json")] == []

    project({"topiq-iaa-r50-ava": (url, sha(publisher))})
    result = CliRunner().invoke(app, ["pull", "topiq-iaa-r50-ava", "--accept-license"])
    assert result.exit_code == 0, result.output
    entry = next(e for e in weights.list_weights() if e.name == "topiq-iaa-r50-ava")
    assert entry.available and Path(result.stdout.strip()) == entry.path
    assert not any(n.startswith("downloads/") and n.endswith(".pth") for n in cache_names())  # publisher file gone
    meta = read_meta(entry.path)
    assert meta["arch"] == "topiq-iaa" and meta["output"] == "distribution" and meta["license"] == "CC-BY-NC-SA-4.0"
    assert meta["converted_from"]["sha256"] == sha(publisher)
    assert meta["policy"]["resize"] == "short_side" and meta["policy"]["size"] == 384

    model = load_model(entry.path)
    fixture = FIXTURES["topiq-iaa-r50-ava"]
    with torch.no_grad():
        for name, expected in zip(fixture["photos"], fixture["probs"], strict=True):
            got = model(photo(name, model.policy.mean, model.policy.std))["probs"][0]
            assert torch.allclose(got, torch.tensor(expected), atol=1e-4), (name, got, expected)


def test_nima_vgg16_from_file_url_and_add_like(tmp_path: Path, project: Callable) -> None:
    publisher = pyiqa_file(tmp_path, "nima-vgg16-ava")
    project({"nima-vgg16-ava": (publisher.as_uri(), sha(publisher))})
    path = weights.pull("nima-vgg16-ava", accept_license=True)
    model = load_model(path)
    assert model.config["keep_last_pool"] is True and model.policy.resize == "center_crop"
    fixture = FIXTURES["nima-vgg16-ava"]
    with torch.no_grad():
        for name, expected in zip(fixture["photos"], fixture["probs"], strict=True):
            got = model(photo(name, model.policy.mean, model.policy.std))["probs"][0]
            assert torch.allclose(got, torch.tensor(expected), atol=1e-4), (name, got, expected)

    # The same file fetched by hand: `add --like` converts and registers it in the user's registry.
    result = CliRunner().invoke(
        app, ["add", str(publisher), "--name", "my-nima", "--like", "nima-vgg16-ava", "--accept-license"]
    )
    assert result.exit_code == 0, result.output
    added = weights.resolve_weights("my-nima")
    assert added.meta["arch"] == "nima" and added.meta["converted_from"]["entry"] == "nima-vgg16-ava"


def test_converting_the_same_publisher_file_again_gives_the_same_bytes(tmp_path: Path, project: Callable) -> None:
    """Scores are cached under the converted file's digest, so `remove` then `pull` finds them again only
    if the conversion is byte for byte the same: here again in another process, with another hash seed
    (set and dict orders), and through `add --like`, which follows the same entry."""
    publisher = pyiqa_file(tmp_path, "nima-vgg16-ava")
    project({"nima-vgg16-ava": (publisher.as_uri(), sha(publisher))})
    first = weights.resolve_weights(str(weights.pull("nima-vgg16-ava", accept_license=True)))
    weights.remove("nima-vgg16-ava")
    script = (
        "import sys; from pathlib import Path; from aesthete import weights; "
        "registry = Path(sys.argv[1]); weights.project_registry_path = lambda: registry; "
        "weights.pull('nima-vgg16-ava', accept_license=True)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "12345"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "weights.toml")], env=env, timeout=300, check=True)
    again = weights.resolve_weights("nima-vgg16-ava")
    assert (again.path, again.sha256) == (first.path, first.sha256)
    added = weights.add_like([publisher], name="my-nima", like="nima-vgg16-ava", accept_license=True)
    assert added.sha256 == first.sha256


def test_a_file_that_does_not_fit_names_its_tensors_in_one_line(tmp_path: Path, project: Callable) -> None:
    fixture = FIXTURES["nima-vgg16-ava"]
    state = seeded_state(fixture["layout"], SEED)
    del state["classifier.2.bias"]
    state["classifier.2.weight"] = torch.zeros(5, 512)
    bad = tmp_path / "bad.pth"
    torch.save({"params": state}, bad)
    result = CliRunner().invoke(app, ["add", str(bad), "--name", "bad", "--like", "nima-vgg16-ava", "--accept-license"])
    assert result.exit_code == 2 and "not nima-vgg16-ava's published file" in result.output  # digest first
    with pytest.raises(CheckpointError) as caught:
        weights.add_like([bad], name="bad", like="nima-vgg16-ava", accept_license=True, other_weights=True)
    message = str(caught.value)
    assert "\n" not in message
    assert "1 missing: head.bias" in message and "1 misshapen: head.weight (5, 512) (expected (10, 512))" in message
    assert not any("bad" in n for n in cache_names())


def clip_archive(path: Path, layout: list[list]) -> None:
    """A TorchScript archive holding CLIP's tensors under OpenAI's names (only the image tower and one
    text-side scalar: the text tower is not read, and a full one would only slow the test)."""
    state = seeded_state([row for row in layout if row[0].startswith("visual.") or row[0] == "logit_scale"], SEED)

    def holder(prefix: str) -> nn.Module:
        module = nn.Module()
        children: dict[str, str] = {}
        for name, tensor in state.items():
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            head, _, tail = rest.partition(".")
            if tail:
                children.setdefault(head, prefix + head + ".")
            else:
                module.register_parameter(head, nn.Parameter(tensor, requires_grad=False))
        for child, child_prefix in children.items():
            module.add_module(child, holder(child_prefix))
        return module

    torch.jit.script(holder("")).save(str(path))


def test_laion_aesthetic_from_publisher_files_and_equivalence(tmp_path: Path, project: Callable) -> None:
    fixture = FIXTURES["laion-aesthetic-v2"]
    head = tmp_path / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save(seeded_state(fixture["layout"], SEED), head)  # LAION's file: a plain state dict
    archive = tmp_path / "ViT-L-14.pt"
    clip_archive(archive, fixture["clip_layout"])
    assert read_torchscript_tensors(archive)["visual.proj"].dtype == torch.float16
    project({"laion-aesthetic-v2": (head.as_uri(), sha(head)), "clip-vit-l14-openai": (archive.as_uri(), sha(archive))})
    path = weights.pull("laion-aesthetic-v2")  # Apache-2.0 on MIT: no acceptance needed
    meta = read_meta(path)
    assert meta["output"] == "score" and meta["bins"] == 0 and meta["score_range"] == [1.0, 10.0]
    assert meta["policy"]["resample"] == "bicubic"
    model = load_model(path)
    with torch.no_grad():
        for name, expected in zip(fixture["photos"], fixture["scores"], strict=True):
            out = model(photo(name, model.policy.mean, model.policy.std))
            assert "probs" not in out
            assert abs(out["score"].item() - expected) < 1e-4, (name, out["score"].item(), expected)
