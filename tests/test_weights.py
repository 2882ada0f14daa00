"""Weights registry, downloads and verification. Downloads are served by a local HTTP server (with and
without Range support, dropping connections on demand) or read from ``file://`` URLs; nothing here
touches the network. Every test gets its own data, cache and config directories (``conftest.py``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from aesthete import learning, paths, weights
from aesthete.checkpoint import CheckpointError, load_model, read_meta
from aesthete.cli import weights as cli_weights
from aesthete.cli.weights import app

ROOT = Path(__file__).resolve().parent.parent
PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)  # several download chunks, not a round number
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


# --- a local file server ---------------------------------------------------------------------------


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` by URL path. Knobs: ``ranges`` (honour Range), ``send_length``, ``drop_after``
    (send that many bytes of the next body, then close), ``redirects`` (path -> Location), ``status``
    (answer every request with this error code), ``hold`` (send half of the next body, set ``holding``,
    and send the rest once ``hold`` is set)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.ranges = True
        self.send_length = True
        self.drop_after: int | None = None
        self.status: int | None = None
        self.hold: threading.Event | None = None
        self.holding = threading.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        server = self.server
        asked = self.headers.get("Range")
        server.requests.append((self.path, asked))
        if self.path in server.redirects:
            self.send_response(302)
            self.send_header("Location", server.redirects[self.path])
            self.end_headers()
            return
        body = server.files.get(self.path)
        if body is None or server.status is not None:
            self.send_error(server.status or 404)
            return
        start = 0
        if asked and server.ranges:
            start = int(re.fullmatch(r"bytes=(\d+)-", asked).group(1))  # type: ignore[union-attr]
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        if server.send_length:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if server.drop_after is not None:
            payload, server.drop_after = payload[: server.drop_after], None
            self.close_connection = True
        if server.hold is not None:
            hold, server.hold = server.hold, None
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            server.holding.set()
            hold.wait()
            payload = payload[len(payload) // 2 :]
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FileServer]:
    httpd = FileServer()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """Replace the project registry with one written by the test."""
    path = tmp_path / "project-weights.toml"
    monkeypatch.setattr(weights, "project_registry_path", lambda: path)

    def write(text: str) -> Path:
        path.write_text(text, encoding="utf-8")
        return path

    return write


def backbone_toml(url: str, *, name: str = "tiny-backbone", hash_line: str | None = None, extra: str = "") -> str:
    hash_line = hash_line or f'sha256 = "{PAYLOAD_SHA}"'
    return f"""
[weights.{name}]
kind = "backbone"
backbone = "resnet18"
dataset = "imagenet-1k"
url = "{url}"
{hash_line}
{extra}
"""


def aesthetic_toml(url: str, sha: str, *, name: str = "nima-test", arch: str = "nima") -> str:
    return f"""
[weights.{name}]
kind = "aesthetic"
arch = "{arch}"
bins = 10
url = "{url}"
sha256 = "{sha}"
"""


def cache_files() -> list[str]:
    folder = paths.weights_cache_dir(create=False)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def available(name: str) -> bool:
    return next(entry for entry in weights.list_weights() if entry.name == name).available


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def nima_file(tiny_checkpoints: dict[str, Path], tmp_path: Path) -> Path:
    """A private copy of the tiny NIMA checkpoint, free to move, delete or rename."""
    return Path(shutil.copyfile(tiny_checkpoints["nima"], tmp_path / "nima-copy.safetensors"))


# --- the project registry ----------------------------------------------------------------------------


def test_project_registry_lists_torchvision_imagenet_files() -> None:
    """Every entry is a real torchvision IMAGENET1K_V1 file: same URL, metrics and size as torchvision
    documents, and a full sha256 beginning with the prefix torchvision puts in the file name."""
    from torchvision.models import get_model_weights

    assert weights.project_registry_path().resolve() == (ROOT / "weights.toml").resolve()
    # The published aesthetic checkpoints and the CLIP tower they need are tested in test_published.py.
    entries = [e for e in weights.list_weights() if e.url and "download.pytorch.org" in e.url]
    assert {entry.backbone for entry in entries} == {"resnet18", "resnet50", "resnet101", "vgg16"}
    others = {e.name for e in weights.list_weights()} - {e.name for e in entries}
    assert others == {"topiq-iaa-r50-ava", "nima-vgg16-ava", "clip-vit-l14-openai", "laion-aesthetic-v2"}
    for entry in entries:
        assert entry.kind == "backbone" and entry.origin == "project" and not entry.available
        assert entry.url is not None and entry.url.startswith("https://download.pytorch.org/models/")
        reference = get_model_weights(entry.backbone).IMAGENET1K_V1
        assert entry.url == reference.url
        prefix = re.fullmatch(r".*-([0-9a-f]{8,})\.pth", entry.url).group(1)  # type: ignore[union-attr]
        assert entry.sha256 is not None and entry.sha256.startswith(prefix)
        assert entry.path.name == entry.url.rsplit("/", 1)[1]
        assert entry.metrics["imagenet_top1"] == reference.meta["_metrics"]["ImageNet-1K"]["acc@1"]
        if entry.size is not None:  # torchvision rounds the size to 0.001 MiB
            assert round(entry.size / 2**20, 3) == reference.meta["_file_size"]


def test_registry_typos_are_errors(registry: Callable[[str], Path], server: FileServer) -> None:
    registry(backbone_toml(server.url("/b.pth"), extra='sha265 = "00"'))
    with pytest.raises(weights.WeightsError, match=r"\[weights.tiny-backbone\] has an unknown field 'sha265'"):
        weights.list_weights()
    registry(backbone_toml(server.url("/b.pth"), hash_line='sha256 = "abc"'))
    with pytest.raises(weights.WeightsError, match="64 lowercase hex"):
        weights.list_weights()


def test_weights_modules_do_not_import_torch() -> None:
    code = "import sys, aesthete.weights, aesthete.paths, aesthete.cli.weights; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- pull ------------------------------------------------------------------------------------------


def test_pull_over_http_verifies_and_caches(server: FileServer, registry: Callable[[str], Path]) -> None:
    server.files["/tiny-backbone-0123abcd.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/tiny-backbone-0123abcd.pth")))
    assert weights.backbone_weights_path("resnet18") is None
    seen: list[tuple[int, int | None]] = []
    path = weights.pull("tiny-backbone", progress=lambda done, total: seen.append((done, total)))
    assert path == paths.weights_cache_dir() / "tiny-backbone-0123abcd.pth"
    assert path.read_bytes() == PAYLOAD
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert available("tiny-backbone")
    assert weights.backbone_weights_path("resnet18") == path
    assert weights.backbone_weights_path("vgg16") is None
    assert cache_files() == ["tiny-backbone-0123abcd.pth"]
    requests = len(server.requests)
    assert weights.pull("tiny-backbone") == path  # already there: no second download
    assert len(server.requests) == requests


def test_pull_accepts_a_sha256_prefix(server: FileServer, registry: Callable[[str], Path]) -> None:
    server.files["/b.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/b.pth"), hash_line=f'sha256_prefix = "{PAYLOAD_SHA[:8]}"'))
    assert weights.pull("tiny-backbone").read_bytes() == PAYLOAD
    assert available("tiny-backbone")


@pytest.mark.parametrize(
    "hash_line",
    [
        f'sha256 = "{"0" * 64}"',
        f'sha256 = "{PAYLOAD_SHA[:8]}{"0" * 56}"',  # the right prefix is not enough when the full digest is known
        'sha256_prefix = "deadbeef"',
    ],
)
def test_checksum_mismatch_is_refused_and_nothing_cached(
    server: FileServer, registry: Callable[[str], Path], hash_line: str
) -> None:
    server.files["/b.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/b.pth"), hash_line=hash_line))
    with pytest.raises(weights.ChecksumMismatch, match="refused.*nothing was cached"):
        weights.pull("tiny-backbone")
    assert cache_files() == []
    assert not available("tiny-backbone")
    assert weights.backbone_weights_path("resnet18") is None


def test_interrupted_download_never_counts_and_resumes(server: FileServer, registry: Callable[[str], Path]) -> None:
    server.files["/b.pth"] = PAYLOAD
    server.drop_after = cut = len(PAYLOAD) // 3
    registry(backbone_toml(server.url("/b.pth")))
    with pytest.raises(weights.WeightsError, match="interrupted.*again to resume"):
        weights.pull("tiny-backbone")
    part = paths.weights_cache_dir() / "b.pth.part"
    assert part.stat().st_size == cut
    assert not available("tiny-backbone")
    assert weights.backbone_weights_path("resnet18") is None
    assert weights.verify() == []  # a .part is not a file to verify either

    path = weights.pull("tiny-backbone")
    assert server.requests[-1] == ("/b.pth", f"bytes={cut}-")
    assert path.read_bytes() == PAYLOAD
    assert cache_files() == ["b.pth"]


def test_a_cut_without_content_length_is_resumed_when_the_registry_knows_the_size(
    server: FileServer, registry: Callable[[str], Path]
) -> None:
    """With no Content-Length, a closed connection looked like the whole file: its hash was refused as a
    mismatch (exit code 1, as for a tampered file) and the bytes fetched were deleted."""
    server.files["/b.pth"] = PAYLOAD
    server.send_length = False
    server.drop_after = cut = len(PAYLOAD) // 3
    registry(backbone_toml(server.url("/b.pth"), extra=f"size = {len(PAYLOAD)}"))
    with pytest.raises(weights.WeightsError, match=f"interrupted .connection closed after {cut} of") as caught:
        weights.pull("tiny-backbone")
    assert not isinstance(caught.value, weights.ChecksumMismatch)
    assert (paths.weights_cache_dir() / "b.pth.part").stat().st_size == cut
    assert weights.pull("tiny-backbone").read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/b.pth", f"bytes={cut}-")


def test_resume_restarts_from_zero_when_the_server_ignores_range(
    server: FileServer, registry: Callable[[str], Path]
) -> None:
    server.files["/b.pth"] = PAYLOAD
    server.ranges = False
    registry(backbone_toml(server.url("/b.pth")))
    paths.weights_cache_dir().joinpath("b.pth.part").write_bytes(b"stale bytes from another attempt")
    path = weights.pull("tiny-backbone")
    assert server.requests[-1][1] is not None  # a resume was asked for, and refused with a 200
    assert path.read_bytes() == PAYLOAD


def test_a_corrupt_partial_is_refused_then_the_next_pull_starts_afresh(
    server: FileServer, registry: Callable[[str], Path]
) -> None:
    server.files["/b.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/b.pth")))
    part = paths.weights_cache_dir() / "b.pth.part"
    part.write_bytes(b"x" * 1000)  # not the file's first 1000 bytes
    with pytest.raises(weights.ChecksumMismatch):
        weights.pull("tiny-backbone")
    assert cache_files() == []
    assert weights.pull("tiny-backbone").read_bytes() == PAYLOAD
    assert server.requests[-1][1] is None


def test_a_complete_partial_is_kept_when_the_server_answers_416(
    server: FileServer, registry: Callable[[str], Path]
) -> None:
    server.files["/b.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/b.pth")))
    (paths.weights_cache_dir() / "b.pth.part").write_bytes(PAYLOAD)
    assert weights.pull("tiny-backbone").read_bytes() == PAYLOAD
    assert server.requests == [("/b.pth", f"bytes={len(PAYLOAD)}-")]


@pytest.mark.parametrize("send_length", [True, False])
def test_downloads_larger_than_the_registered_size_are_refused(
    server: FileServer, registry: Callable[[str], Path], send_length: bool
) -> None:
    server.files["/b.pth"] = PAYLOAD
    server.send_length = send_length  # without a length, the cap is enforced while streaming
    registry(backbone_toml(server.url("/b.pth"), extra="size = 100000"))
    with pytest.raises(weights.WeightsError, match="refused.*more than"):
        weights.pull("tiny-backbone")
    assert cache_files() == []


@pytest.mark.parametrize("url", ["http://example.com/b.pth", "ftp://127.0.0.1/b.pth", "data:,abc"])
def test_insecure_or_unknown_schemes_are_refused(registry: Callable[[str], Path], url: str) -> None:
    registry(backbone_toml(url))
    with pytest.raises(weights.WeightsError, match="refused; weights download over https"):
        weights.pull("tiny-backbone")


def test_redirects_to_insecure_urls_are_refused(server: FileServer, registry: Callable[[str], Path]) -> None:
    server.redirects["/b.pth"] = "http://example.com/b.pth"
    registry(backbone_toml(server.url("/b.pth")))
    with pytest.raises(weights.WeightsError, match="http://example.com/b.pth: refused"):
        weights.pull("tiny-backbone")
    server.redirects["/b.pth"] = server.url("/moved.pth")  # a loopback redirect is fine
    server.files["/moved.pth"] = PAYLOAD
    assert weights.pull("tiny-backbone").read_bytes() == PAYLOAD


@pytest.mark.parametrize("status", [404, 500])
def test_http_errors_are_one_line(server: FileServer, registry: Callable[[str], Path], status: int) -> None:
    server.files["/b.pth"] = PAYLOAD
    server.status = status if status != 404 else None
    registry(backbone_toml(server.url("/b.pth" if status != 404 else "/missing.pth")))
    with pytest.raises(weights.WeightsError, match=f"answered HTTP {status}") as caught:
        weights.pull("tiny-backbone")
    assert "\n" not in str(caught.value)
    code, stdout, stderr = run("pull", "tiny-backbone")
    assert code == 2 and stdout == "" and stderr.startswith("error:") and stderr.count("\n") == 1
    assert cache_files() == []


def test_file_url_pull_of_an_aesthetic_checkpoint(nima_file: Path, registry: Callable[[str], Path]) -> None:
    sha = sha256_of(nima_file)
    registry(aesthetic_toml(nima_file.as_uri(), sha))
    with pytest.raises(weights.WeightsNotAvailable) as caught:
        weights.resolve_weights("nima-test")
    message = str(caught.value)
    for way in ("aesthete weights pull nima-test", "aesthete weights add FILE --name N", "aesthete train nima"):
        assert way in message
    assert weights.default_weights_for("nima") is None

    path = weights.pull("nima-test")
    assert path.name == f"{sha[:16]}-nima-test.safetensors"
    resolved = weights.resolve_weights("nima-test", arch="nima")
    assert (resolved.path, resolved.name, resolved.sha256, resolved.weights_id) == (path, "nima-test", sha, sha[:16])
    assert resolved.meta["arch"] == "nima" and resolved.meta["bins"] == 10
    assert weights.default_weights_for("nima") == resolved
    assert weights.default_weights_for("hla-gcn") is None
    with pytest.raises(weights.WeightsError, match="for model 'nima', not 'hla-gcn'"):
        weights.resolve_weights("nima-test", arch="hla-gcn")


def test_a_download_whose_header_disagrees_with_the_registry_is_not_cached(
    nima_file: Path, registry: Callable[[str], Path]
) -> None:
    registry(aesthetic_toml(nima_file.as_uri(), sha256_of(nima_file), arch="hla-gcn"))
    with pytest.raises(weights.WeightsError, match="a nima checkpoint, the registry says hla-gcn"):
        weights.pull("nima-test")
    assert cache_files() == []


def test_backbones_are_not_scoring_weights(server: FileServer, registry: Callable[[str], Path]) -> None:
    server.files["/b.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/b.pth")))
    weights.pull("tiny-backbone")
    with pytest.raises(weights.WeightsError, match="for training, not for scoring"):
        weights.resolve_weights("tiny-backbone")


def test_unknown_names_and_missing_files() -> None:
    with pytest.raises(weights.UnknownWeights, match="unknown weights 'nope'"):
        weights.resolve_weights("nope")
    with pytest.raises(weights.UnknownWeights):
        weights.pull("nope")
    with pytest.raises(weights.WeightsError, match="no such file") as caught:
        weights.resolve_weights("missing/model.safetensors")
    assert not isinstance(caught.value, weights.UnknownWeights)


# --- add, resolve by path, verify --------------------------------------------------------------------


def test_add_copies_registers_and_survives_the_original(nima_file: Path) -> None:
    sha = sha256_of(nima_file)
    entry = weights.add(nima_file, name="mine")
    assert entry.available and entry.origin == "user" and entry.kind == "aesthetic"
    assert (entry.arch, entry.bins, entry.sha256, entry.backbone) == ("nima", 10, sha, "resnet18")
    assert entry.policy == "warp-64-v1"
    assert entry.path == paths.weights_cache_dir() / f"{sha[:16]}-mine.safetensors"
    assert [e.name for e in weights.list_weights() if e.origin == "user"] == ["mine"]

    nima_file.unlink()
    resolved = weights.resolve_weights("mine", arch="nima")
    assert (resolved.path, resolved.sha256, resolved.meta["arch"]) == (entry.path, sha, "nima")
    assert weights.default_weights_for("nima") == resolved
    assert weights.verify("mine") == [("mine", True, "sha256 ok")]


def test_resolve_by_path_and_by_registered_digest(nima_file: Path) -> None:
    by_path = weights.resolve_weights(str(nima_file))
    assert (by_path.name, by_path.path, by_path.meta["arch"]) == (nima_file.name, nima_file, "nima")
    assert by_path.sha256 == sha256_of(nima_file)
    with pytest.raises(weights.WeightsError, match="a nima checkpoint, not hla-gcn"):
        weights.resolve_weights(str(nima_file), arch="hla-gcn")
    weights.add(nima_file, name="mine")
    assert weights.resolve_weights(str(nima_file)).name == "mine"  # same bytes, known by their name


def test_path_digests_are_remembered_until_the_file_changes(
    nima_file: Path, tiny_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real = weights._hash_file
    monkeypatch.setattr(weights, "_hash_file", lambda path: calls.append(path) or real(path))
    first = weights.resolve_weights(str(nima_file))
    assert weights.resolve_weights(str(nima_file)) == first
    assert len(calls) == 1
    shutil.copyfile(tiny_checkpoints["hla-gcn"], nima_file)  # same name, different bytes
    assert weights.resolve_weights(str(nima_file)).sha256 != first.sha256
    assert len(calls) == 2


@pytest.mark.parametrize("kind", ["pickle", "random", "plain-safetensors", "empty"])
def test_add_refuses_files_that_are_not_aesthete_checkpoints(tmp_path: Path, kind: str) -> None:
    import torch
    from safetensors.torch import save_file

    bad = tmp_path / f"{kind}.bin"
    if kind == "pickle":
        torch.save({"weight": torch.zeros(3)}, bad)
    elif kind == "random":
        bad.write_bytes(os.urandom(4096))
    elif kind == "plain-safetensors":
        save_file({"weight": torch.zeros(3)}, str(bad))
    else:
        bad.write_bytes(b"")
    with pytest.raises(CheckpointError):
        weights.add(bad, name="bad")
    assert not paths.user_registry_path(create=False).exists()
    assert cache_files() == []


def test_add_names_are_checked(nima_file: Path, tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(weights.WeightsError, match="letters, digits"):
        weights.add(nima_file, name="../escape")
    with pytest.raises(weights.WeightsError, match="is a project entry"):
        weights.add(nima_file, name="resnet50-imagenet1k-v1")
    first = weights.add(nima_file, name="mine")
    assert weights.add(nima_file, name="mine") == first  # the same bytes again: nothing changes
    with pytest.raises(weights.WeightsError, match="already names other weights"):
        weights.add(tiny_checkpoints["hla-gcn"], name="mine")
    assert paths.user_registry_path().read_text().count('[weights."mine"]') == 1
    assert cache_files() == [first.path.name]  # no temporary copy left behind


def test_user_registry_keeps_hand_edits_and_odd_file_names(nima_file: Path) -> None:
    registry = paths.user_registry_path()
    registry.write_text("# my notes\n", encoding="utf-8")
    odd = nima_file.with_name('we"ird\\ na\tme ✓.safetensors')
    nima_file.rename(odd)
    entry = weights.add(odd, name="odd")
    assert entry.source == str(odd)  # written as TOML escapes, read back exactly
    assert registry.read_text(encoding="utf-8").startswith("# my notes\n")


def test_a_bad_user_entry_is_skipped_with_a_warning_and_the_rest_still_works(
    nima_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights.add(nima_file, name="mine")
    registry = paths.user_registry_path()
    hand_made = registry.read_text() + '\n[weights.t-badbins]\nkind = "aesthetic"\nbins = "ten"\n'
    registry.write_text(hand_made + "\n[weights.resnet18-imagenet1k-v1]\nkind = 1\n")
    capsys.readouterr()
    for _ in range(2):
        assert [e.name for e in weights.list_weights() if e.origin == "user"] == ["mine"]
    warnings = capsys.readouterr().err.splitlines()
    assert warnings == [  # one line each, naming the file and the entry, once per process
        f"aesthete: warning: {registry}: [weights.t-badbins] field 'bins' has the wrong type; "
        "skipped until it is fixed or removed",
        f"aesthete: warning: {registry}: [weights.resnet18-imagenet1k-v1] is also a project entry; rename it; "
        "skipped until it is fixed or removed",
    ]
    assert weights.resolve_weights("mine").meta["arch"] == "nima"
    assert run("list")[0] == 0 and run("verify")[0] == 0
    before = registry.read_text()
    with pytest.raises(weights.WeightsError, match=r"\[weights.t-badbins\] is unusable; fix or remove it"):
        weights.add(nima_file, name="t-badbins")  # a second table of that name would break the whole file
    assert registry.read_text() == before

    registry.write_text("not toml [")  # a file that cannot be read at all is still an error
    with pytest.raises(weights.WeightsError, match="unreadable weights registry"):
        weights.list_weights()


def rewritten(source: Path, dest: Path, change: Callable[[dict[str, Any]], object]) -> Path:
    """A copy of checkpoint ``source`` whose aesthete metadata ``change`` edits (the tensors kept)."""
    raw = source.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    meta = json.loads(header["__metadata__"]["aesthete"])
    change(meta)
    header["__metadata__"]["aesthete"] = json.dumps(meta)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads its header to 8 bytes
    dest.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])
    return dest


def unusable_checkpoint(case: str, tiny_checkpoints: dict[str, Path], folder: Path) -> Path:
    """A checkpoint the field test found `add` registering (or crashing on), by ``case``."""
    nima, bad = tiny_checkpoints["nima"], folder / f"{case}.safetensors"
    if case == "truncated":
        bad.write_bytes(nima.read_bytes()[:1_000_000])
        return bad
    if case == "other-model-tensors":  # nima's header on hla-gcn's tensors
        return rewritten(tiny_checkpoints["hla-gcn"], bad, lambda meta: meta.update(read_meta(nima)))
    changes: dict[str, Callable[[dict[str, Any]], object]] = {
        "bins-text": lambda meta: meta.update(bins="ten"),
        "policy-empty": lambda meta: meta.update(policy={}),
        "policy-unknown-field": lambda meta: meta["policy"].update(name="x"),
        "unknown-arch": lambda meta: meta.update(arch="nosucharch"),
        "other-bins": lambda meta: (meta.update(bins=5), meta["config"].update(bins=5)),
    }
    return rewritten(nima, bad, changes[case])


UNUSABLE = {  # case: what the one-line refusal says
    "bins-text": "its aesthete metadata has bins 'ten', not a whole number",
    "policy-empty": r"unusable input policy \(no 'resize'; no 'size'\)",
    "policy-unknown-field": r"unusable input policy \(unknown field 'name'\)",
    "unknown-arch": "names architecture 'nosucharch', which aesthete does not know",
    "truncated": r"truncated or damaged: its header describes \d+ bytes of tensors, the file holds \d+ after",
    "other-model-tensors": r"tensors do not fit nima \(2 missing: head.weight and 1 more; \d+ unexpected: ",
    "other-bins": r"tensors do not fit nima \(2 misshapen: head.weight \(10, 512\) \(expected \(5, 512\)\) and 1",
}
IN_HEADER = {"bins-text", "policy-empty", "policy-unknown-field", "unknown-arch", "truncated"}


@pytest.mark.parametrize("case", sorted(UNUSABLE))
def test_add_refuses_unusable_checkpoints_in_one_line_and_writes_nothing(
    case: str, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    bad = unusable_checkpoint(case, tiny_checkpoints, tmp_path)
    with pytest.raises(CheckpointError, match=UNUSABLE[case]) as caught:
        weights.add(bad, name="bad")
    assert str(caught.value).startswith(f"{bad}: ") and "\n" not in str(caught.value)
    code, stdout, stderr = run("add", str(bad), "--name", "bad")
    assert code == 2 and stdout == "" and stderr.startswith("error:") and len(stderr.strip().splitlines()) == 1
    assert not paths.user_registry_path(create=False).exists()
    assert cache_files() == []
    if case in IN_HEADER:  # found where every command reads a checkpoint's header: score and eval too
        with pytest.raises(CheckpointError, match=UNUSABLE[case]):
            weights.resolve_weights(str(bad))
    else:  # and what loading finds, it says in the same words
        with pytest.raises(CheckpointError, match=UNUSABLE[case]):
            load_model(bad)


def test_verify_reports_checkpoints_registered_before_add_checked_them(
    nima_file: Path, tiny_checkpoints: dict[str, Path], tmp_path: Path
) -> None:
    weights.add(nima_file, name="mine")
    registry = paths.user_registry_path()
    cases = ["truncated", "unknown-arch", "other-model-tensors"]
    for n, case in enumerate(cases):  # as `add` registered them before it checked usability
        bad = unusable_checkpoint(case, tiny_checkpoints, tmp_path)
        registry.write_text(
            registry.read_text()
            + f'\n[weights.old{n}]\nkind = "aesthetic"\narch = "nima"\nbins = 10\n'
            + f'sha256 = "{sha256_of(bad)}"\npath = "{bad}"\n'
        )
    results = weights.verify()
    assert results[0] == ("mine", True, "sha256 ok")
    for (name, ok, reason), case in zip(results[1:], cases, strict=True):
        assert not ok and re.match(f"sha256 ok, not usable: .*{UNUSABLE[case]}", reason), (name, reason)
    code, stdout, _ = run("verify")
    assert code == 1 and stdout.count("FAILED") == 3


def test_add_refuses_the_name_of_a_personal_head(nima_file: Path) -> None:
    (learning.heads_dir(create=True) / "mine.safetensors").write_bytes(b"a head made by `aesthete learn`")
    with pytest.raises(weights.WeightsError, match="'mine' already names a personal head"):
        weights.add(nima_file, name="mine")
    with pytest.raises(weights.WeightsError, match="'mine' already names a personal head"):
        weights.add_like([nima_file], name="mine", like="nima-vgg16-ava", accept_license=True)
    code, _, stderr = run("add", str(nima_file), "--name", "mine")
    assert code == 2 and "personal head" in stderr
    assert not paths.user_registry_path(create=False).exists()
    assert cache_files() == []


def test_a_missing_or_changed_added_file_is_reported_and_can_be_restored(nima_file: Path) -> None:
    entry = weights.add(nima_file, name="mine")
    entry.path.unlink()
    assert not available("mine")
    with pytest.raises(weights.WeightsNotAvailable, match="missing or changed.*weights add FILE"):
        weights.resolve_weights("mine")
    assert weights.verify() == [("mine", False, f"{entry.path} is missing")]
    with pytest.raises(weights.WeightsError, match="nothing to pull"):
        weights.pull("mine")

    assert weights.add(nima_file, name="mine").available
    with entry.path.open("r+b") as handle:  # same size, one byte flipped
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last[0] ^ 1]))
    assert weights.verify("mine") == [("mine", False, "sha256 mismatch")]
    assert not available("mine")
    assert weights.default_weights_for("nima") is None


# --- the CLI -----------------------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_list_json_and_table() -> None:
    code, stdout, _ = run("list", "--json")
    assert code == 0
    rows = json.loads(stdout)["weights"]
    assert {row["name"] for row in rows} >= {"resnet50-imagenet1k-v1", "vgg16-imagenet1k-v1"}
    assert all(row["available"] is False and row["url"].startswith("https://") for row in rows)
    code, stdout, _ = run("list")
    assert code == 0 and "resnet101" in stdout


def test_cli_add_list_verify(nima_file: Path, tmp_path: Path) -> None:
    code, stdout, _ = run("add", str(nima_file), "--name", "mine", "--json")
    assert code == 0
    added = json.loads(stdout)
    assert added["name"] == "mine" and added["arch"] == "nima" and added["available"] is True
    rows = {row["name"]: row for row in json.loads(run("list", "--json")[1])["weights"]}
    assert rows["mine"]["available"] is True and rows["mine"]["origin"] == "user"
    code, stdout, _ = run("verify", "--json")
    assert code == 0 and json.loads(stdout)["verified"] == [{"name": "mine", "ok": True, "reason": "sha256 ok"}]

    Path(added["path"]).write_bytes(b"tampered")
    code, stdout, _ = run("verify")
    assert code == 1 and "FAILED" in stdout and "mine" in stdout

    pickle_file = tmp_path / "model.pth"
    pickle_file.write_bytes(b"\x80\x04\x95" + os.urandom(64))
    code, stdout, stderr = run("add", str(pickle_file), "--name", "evil")
    assert code == 2 and stdout == "" and stderr.startswith("error:")
    assert "not a safetensors checkpoint" in " ".join(stderr.split())  # Rich may wrap the line


def test_cli_pull(server: FileServer, registry: Callable[[str], Path]) -> None:
    server.files["/good.pth"] = server.files["/bad.pth"] = PAYLOAD
    registry(
        backbone_toml(server.url("/good.pth"))
        + backbone_toml(server.url("/bad.pth"), name="tampered", hash_line=f'sha256 = "{"1" * 64}"')
    )
    code, stdout, _ = run("pull", "tiny-backbone")
    assert code == 0
    assert Path(stdout.strip()).read_bytes() == PAYLOAD  # stdout is only the path; progress is on stderr
    code, stdout, stderr = run("pull", "tampered")
    assert code == 1 and "refused" in stderr and stdout == ""
    assert stderr.startswith("error:")  # no progress display off a terminal: it left an empty line first
    code, _, stderr = run("pull", "nope")
    assert code == 2 and "unknown weights 'nope'" in stderr


def test_cli_registry_errors_keep_their_brackets(server: FileServer, registry: Callable[[str], Path]) -> None:
    registry(backbone_toml(server.url("/b.pth"), extra='sha265 = "00"'))
    code, _, stderr = run("list")
    assert code == 2 and "[weights.tiny-backbone] has an unknown field" in " ".join(stderr.split())


def test_a_noncommercial_licence_is_accepted_before_any_download_whatever_the_format(
    nima_file: Path, registry: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An aesthete-format entry (no ``format``: nothing to convert) under a non-commercial licence."""
    registry(aesthetic_toml(nima_file.as_uri(), sha256_of(nima_file)) + 'license = "CC-BY-NC-4.0"\n')
    with pytest.raises(weights.LicenseNotAccepted, match="CC-BY-NC-4.0.*--accept-license; nothing was downloaded"):
        weights.pull("nima-test")
    assert cache_files() == []
    code, _, stderr = run("pull", "nima-test")  # no terminal to ask: the way out, exit 2
    assert code == 2 and "--accept-license; nothing was downloaded" in " ".join(stderr.split())
    assert cache_files() == []

    monkeypatch.setattr(cli_weights, "sys", SimpleNamespace(stdin=SimpleNamespace(isatty=lambda: True)))
    result = CliRunner().invoke(app, ["pull", "nima-test"], input="n\n")
    assert result.exit_code == 1
    # (the runner echoes the answer on stdout, so no newline follows the prompt here)
    assert result.stderr.endswith("[y/N]:licence not accepted; nothing was downloaded\n")
    assert "error:" not in result.stderr and "--accept-license" not in result.stderr
    assert cache_files() == []
    result = CliRunner().invoke(app, ["pull", "nima-test"], input="y\n")
    assert result.exit_code == 0 and available("nima-test")


def test_ctrl_d_or_ctrl_c_at_the_licence_prompt_declines_in_one_line(
    nima_file: Path, registry: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry(aesthetic_toml(nima_file.as_uri(), sha256_of(nima_file)) + 'license = "CC-BY-NC-4.0"\n')
    monkeypatch.setattr(cli_weights, "sys", SimpleNamespace(stdin=SimpleNamespace(isatty=lambda: True)))
    result = CliRunner().invoke(app, ["pull", "nima-test"], input="")  # the end of input: Ctrl-D
    assert result.exit_code == 1
    assert result.stderr.endswith("[y/N]:\nlicence not accepted; nothing was downloaded\n")
    # The notice is one line: Rich folded it at 80 columns, cutting the source's URL in two.
    assert result.stderr.splitlines()[0] == f"nima-test: licence CC-BY-NC-4.0 (source: {nima_file.as_uri()})"
    assert "Aborted" not in result.output and cache_files() == []

    def ctrl_c(*args: object, **kwargs: object) -> bool:
        try:  # as Click's prompt does with a KeyboardInterrupt
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise typer.Abort() from None

    monkeypatch.setattr(cli_weights.typer, "confirm", ctrl_c)
    result = CliRunner().invoke(app, ["pull", "nima-test"])
    assert result.exit_code == 130
    assert result.stderr.endswith("\nlicence not accepted; nothing was downloaded\n")
    assert "Aborted" not in result.output and cache_files() == []


def test_the_licence_notice_is_plain_text_on_a_colour_terminal(
    nima_file: Path, registry: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a terminal Rich's highlighter coloured the notice's numbers and brackets ("CC-BY-NC-4.0", "(").
    import io

    from rich.console import Console

    registry(aesthetic_toml(nima_file.as_uri(), sha256_of(nima_file)) + 'license = "CC-BY-NC-4.0"\n')
    monkeypatch.setattr(cli_weights, "sys", SimpleNamespace(stdin=SimpleNamespace(isatty=lambda: True)))
    screen = io.StringIO()
    monkeypatch.setattr(cli_weights, "err", Console(file=screen, force_terminal=True, color_system="standard"))
    result = CliRunner().invoke(app, ["pull", "nima-test"], input="n\n")
    assert result.exit_code == 1
    assert screen.getvalue().splitlines()[0] == f"nima-test: licence CC-BY-NC-4.0 (source: {nima_file.as_uri()})"


# --- the download path, field-tested: cuts, full disks, two pulls at once, Ctrl-C -----------------------

PULL_SCRIPT = (
    "import sys; from pathlib import Path; from aesthete import weights; "
    "registry = Path(sys.argv.pop(1)); weights.project_registry_path = lambda: registry; "
    "from aesthete.cli import main; sys.argv[0] = 'aesthete'; main()"
)


def pull_in_a_process(registry_file: Path, name: str, *, file_size_limit: int) -> subprocess.CompletedProcess[str]:
    """``aesthete weights pull NAME`` in a child whose files may not grow past ``file_size_limit`` bytes
    (RLIMIT_FSIZE: a write past it fails with EFBIG, as on a full disk), against the test's registry."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", PULL_SCRIPT, str(registry_file), "weights", "pull", name],
        capture_output=True, text=True, env=env, preexec_fn=limit, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_full_disk_stops_the_pull_with_one_line_and_the_next_pull_resumes(
    server: FileServer, registry: Callable[[str], Path]
) -> None:
    server.files["/b.pth"] = PAYLOAD
    registry_file = registry(backbone_toml(server.url("/b.pth")))
    limit = 1024 * 1024
    done = pull_in_a_process(registry_file, "tiny-backbone", file_size_limit=limit)
    assert done.returncode == 2 and done.stdout == ""
    message = done.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    # Not "interrupted ... again to resume", as for a cut connection: the fault is this machine's.
    assert message.startswith("error: download of 'tiny-backbone' stopped: cannot write")
    assert "(File too large); free space or make the folder writable" in message
    assert "(the 1.0 MB downloaded are kept and resumed)" in message
    assert cache_files() == ["b.pth.part"]
    assert (paths.weights_cache_dir() / "b.pth.part").read_bytes() == PAYLOAD[:limit]

    assert weights.pull("tiny-backbone").read_bytes() == PAYLOAD  # with room again: resumed, not restarted
    assert server.requests[-1] == ("/b.pth", f"bytes={limit}-")
    assert cache_files() == ["b.pth"]


def test_a_cache_folder_that_cannot_be_made_is_one_line(
    server: FileServer, registry: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.files["/b.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/b.pth")))
    blocker = tmp_path / "a file"
    blocker.write_bytes(b"not a folder")
    monkeypatch.setenv("AESTHETE_CACHE_DIR", str(blocker / "cache"))
    code, stdout, stderr = run("pull", "tiny-backbone")
    assert code == 2 and stdout == ""
    folder = blocker / "cache" / "weights"
    assert stderr == f"error: cannot write weights 'tiny-backbone' into {folder} (Not a directory)\n"
    assert server.requests == []  # found before a byte was fetched


def test_a_second_pull_or_a_remove_of_the_same_weights_is_refused_while_the_first_pull_runs(
    server: FileServer, registry: Callable[[str], Path]
) -> None:
    """Both would write one ``.part`` (and the later one could truncate the file the first had just
    published): the second says the weights are being pulled, and touches nothing."""
    server.files["/b.pth"] = PAYLOAD
    server.hold = release = threading.Event()
    registry(backbone_toml(server.url("/b.pth")))
    first: dict[str, Any] = {}

    def pull_first() -> None:
        try:
            first["path"] = weights.pull("tiny-backbone")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            first["error"] = exc

    thread = threading.Thread(target=pull_first)
    thread.start()
    try:
        assert server.holding.wait(60), "the first download never started"
        code, stdout, stderr = run("pull", "tiny-backbone")
        assert code == 2 and stdout == ""
        assert "error: weights 'tiny-backbone' are being pulled or removed by another aesthete" in stderr
        assert len(server.requests) == 1  # the second asked for nothing
        code, stdout, stderr = run("remove", "tiny-backbone")  # nor is its .part deleted under it
        assert code == 2 and stdout == "" and "being pulled or removed by another aesthete" in stderr
        assert cache_files() == ["b.pth.part"]
    finally:
        release.set()
        thread.join(60)
    assert "error" not in first, first.get("error")
    assert first["path"].read_bytes() == PAYLOAD and available("tiny-backbone")
    assert cache_files() == ["b.pth"]
    assert run("pull", "tiny-backbone")[0] == 0  # the lock went with the first pull


def lock_files() -> list[str]:
    folder = paths.cache_dir() / "locks"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.skipif(sys.platform == "win32", reason="Windows keeps lock files: an open file cannot be deleted")
def test_a_pull_or_remove_deletes_its_lock_file_as_it_ends(server: FileServer, registry: Callable[[str], Path]) -> None:
    """Before: an empty ``NAME.lock`` stayed in the cache's ``locks`` folder after every pull and remove."""
    server.files["/b.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/b.pth")))
    held: list[list[str]] = []
    real = weights._pull_file

    def noting_the_lock(entry: weights.WeightsEntry, progress: weights.ProgressFn | None) -> Path:
        held.append(lock_files())
        return real(entry, progress)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(weights, "_pull_file", noting_the_lock)
        weights.pull("tiny-backbone")
    assert held == [["tiny-backbone.lock"]] and lock_files() == []  # there while pulling, gone after
    weights.remove("tiny-backbone")
    assert lock_files() == []
    server.status = 404
    with pytest.raises(weights.WeightsError, match="HTTP 404"):
        weights.pull("tiny-backbone")
    assert lock_files() == []  # a pull that fails deletes it too


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX; Windows never deletes a lock file")
def test_a_lock_file_deleted_by_its_holder_as_it_was_opened_is_not_taken_for_the_lock(
    server: FileServer, registry: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pull opens ``NAME.lock`` just as the previous holder, finishing, deletes it and a third process
    makes and locks a new one: the first then locks a file no longer under the name. Without the check
    after locking it went on beside the third; now it sees the name's file is another, and is refused."""
    import fcntl

    server.files["/b.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/b.pth")))
    path = paths.cache_dir() / "locks" / "tiny-backbone.lock"
    real, third = weights._try_lock, []

    def race(fd: int) -> bool:
        if not third:  # between this pull's open and its lock: the holder deletes, a third locks anew
            path.unlink()
            third.append(open(path, "a+b"))  # noqa: SIM115 - held until the test ends
            fcntl.flock(third[0].fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return real(fd)

    monkeypatch.setattr(weights, "_try_lock", race)
    try:
        with pytest.raises(weights.WeightsBusy, match="being pulled or removed by another aesthete"):
            weights.pull("tiny-backbone")
        assert server.requests == [] and lock_files() == ["tiny-backbone.lock"]  # the third's, untouched
    finally:
        third[0].close()
    assert weights.pull("tiny-backbone").read_bytes() == PAYLOAD and lock_files() == []


class WindowsLocking(SimpleNamespace):
    """``msvcrt`` as far as the lock uses it, as Microsoft documents ``_locking``: LK_NBLCK (2) locks
    bytes of the file, and fails with EACCES while another handle holds them."""

    LK_UNLCK, LK_NBLCK = 0, 2

    def __init__(self) -> None:
        super().__init__(held={})

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        assert (mode, nbytes) == (self.LK_NBLCK, 1)
        stat = os.fstat(fd)
        if self.held.setdefault((stat.st_dev, stat.st_ino), fd) != fd:
            raise PermissionError(errno.EACCES, "Permission denied")


def test_the_windows_lock_refuses_a_second_holder_and_keeps_its_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The branch that runs only on Windows, with msvcrt as documented (the real one cannot load here):
    a second holder is refused, and the lock file is kept (Windows cannot delete a file open there)."""
    monkeypatch.setitem(sys.modules, "msvcrt", WindowsLocking())
    monkeypatch.setattr(sys, "platform", "win32")
    busy = pytest.raises(weights.WeightsBusy, match="being pulled or removed by another aesthete")
    with weights._exclusive("tiny-backbone"), busy, weights._exclusive("tiny-backbone"):
        pytest.fail("a second holder of the lock")
    assert lock_files() == ["tiny-backbone.lock"]


def test_ctrl_c_during_a_pull_is_one_line_exit_130_and_the_next_pull_resumes(
    server: FileServer, registry: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server.files["/b.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/b.pth")))

    @contextlib.contextmanager
    def ctrl_c_after_a_megabyte(name: str) -> Iterator[Callable[[int, int | None], None]]:
        def update(done: int, total: int | None) -> None:
            if done >= weights.CHUNK:
                raise KeyboardInterrupt

        yield update

    monkeypatch.setattr(cli_weights, "_progress", ctrl_c_after_a_megabyte)
    code, stdout, stderr = run("pull", "tiny-backbone")
    assert code == 130 and stdout == ""
    assert stderr == (
        "interrupted: tiny-backbone is not installed; run `aesthete weights pull tiny-backbone` again "
        "(a partial download is resumed)\n"
    )
    assert cache_files() == ["b.pth.part"]  # nothing under the final name
    kept = (paths.weights_cache_dir() / "b.pth.part").stat().st_size
    assert kept == weights.CHUNK
    assert weights.pull("tiny-backbone").read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/b.pth", f"bytes={kept}-")


def test_ctrl_c_while_converting_keeps_the_verified_download_for_the_next_pull(
    server: FileServer, registry: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publisher's file is downloaded, verified, then converted: Ctrl-C during the conversion left
    nothing, so the next pull fetched it all again."""
    server.files["/NIMA_publisher.pth"] = PAYLOAD
    registry(f"""
[weights.converted]
kind = "aesthetic"
arch = "nima"
bins = 10
format = "pyiqa-nima"
url = "{server.url("/NIMA_publisher.pth")}"
sha256 = "{PAYLOAD_SHA}"
""")
    part = paths.weights_cache_dir() / "downloads" / "NIMA_publisher.pth.part"

    def interrupted(entry: weights.WeightsEntry, files: dict[str, Path], dest: Path, digest: str) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(weights, "_convert_into", interrupted)
    code, stdout, stderr = run("pull", "converted")
    assert code == 130 and stdout == "" and stderr.startswith("interrupted: converted is not installed")
    assert part.read_bytes() == PAYLOAD and not (paths.weights_cache_dir() / "converted.safetensors").exists()

    converted: list[bytes] = []

    def convert(entry: weights.WeightsEntry, files: dict[str, Path], dest: Path, digest: str) -> str:
        converted.append(files["main"].read_bytes())
        dest.write_bytes(b"a converted checkpoint")
        return digest

    monkeypatch.setattr(weights, "_convert_into", convert)
    assert weights.pull("converted") == paths.weights_cache_dir() / "converted.safetensors"
    assert converted == [PAYLOAD]
    assert server.requests[-1] == ("/NIMA_publisher.pth", f"bytes={len(PAYLOAD)}-")  # 416: nothing fetched again
    assert not part.exists()  # converted: the publisher's file goes


# `weights add` in a child that presses Ctrl-C on itself (a real SIGINT, raised in the main thread so it
# lands at once) at a chosen step: while the file is copied into the cache; once the copy has its final
# name, before the registry is written; just after the registry is written, before `add` returns.
ADD_SCRIPT = """
import signal, sys
from aesthete import fileops, weights

step = sys.argv.pop(1)
if step == "copying":
    copy = weights._copy_hashing

    def hook(source, dest):
        dest.write(source.read(weights.CHUNK))
        signal.raise_signal(signal.SIGINT)
        return copy(source, dest)

    weights._copy_hashing = hook
elif step == "copied":
    remember = weights._remember_digest

    def hook(path, stat, digest):
        remember(path, stat, digest)
        signal.raise_signal(signal.SIGINT)

    weights._remember_digest = hook
else:
    write, pressed = fileops.atomic_write_text, []

    def hook(path, text):
        write(path, text)
        if path.name == "weights.toml" and not pressed:
            pressed.append(True)
            signal.raise_signal(signal.SIGINT)

    fileops.atomic_write_text = hook
from aesthete.cli import main
sys.argv[0] = "aesthete"
main()
"""


@pytest.mark.parametrize("step", ["copying", "copied", "registered"])
def test_ctrl_c_during_add_is_one_line_exit_130_and_leaves_no_copy_and_no_entry(
    step: str, nima_file: Path, tiny_checkpoints: dict[str, Path]
) -> None:
    """Before: `interrupted: stopped before the end`, and from the moment the copy had its name, that copy
    stayed in the cache with no entry naming it (so `remove` could never delete it)."""
    weights.add(tiny_checkpoints["hla-gcn"], name="earlier")  # a registry to keep as it was
    registry = paths.user_registry_path(create=False)
    before_registry, before_cache = registry.read_bytes(), cache_files()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", ADD_SCRIPT, step, "weights", "add", str(nima_file), "--name", "mine"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (130, "")
    assert done.stderr == "interrupted: mine was not added (no copy kept in the cache, the registry unchanged)\n"
    assert registry.read_bytes() == before_registry
    assert cache_files() == before_cache  # no copy, whole or partial, and no staged file
    assert weights.add(nima_file, name="mine").available  # nothing in the way of adding it again


def test_ctrl_c_as_add_like_finishes_converting_leaves_no_staged_copy(
    registry: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The conversion had written the staged checkpoint and its digest record (Ctrl-C as it noted the
    digest): before, both stayed in the cache, ``.add-NAME.safetensors`` beside a record of it."""
    registry(f"""
[weights.converted]
kind = "aesthetic"
arch = "nima"
bins = 10
format = "pyiqa-nima"
url = "file:///nowhere/NIMA_publisher.pth"
sha256 = "{PAYLOAD_SHA}"
""")
    publisher = tmp_path / "NIMA_publisher.pth"
    publisher.write_bytes(PAYLOAD)

    def converted_then_interrupted(entry: weights.WeightsEntry, files: dict[str, Path], dest: Path, digest: str) -> str:
        dest.write_bytes(b"a converted checkpoint")
        (dest.parent / (dest.name + ".sha256")).write_text("0" * 64 + "\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(weights, "_convert_into", converted_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        weights.add_like([publisher], name="mine", like="converted")
    assert cache_files() == []
    assert not paths.user_registry_path(create=False).exists()


def test_pull_add_verify_in_xdg_folders_with_spaces(
    server: FileServer,
    registry: Callable[[str], Path],
    nima_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No AESTHETE_*_DIR: the XDG variables decide (platformdirs), here paths with spaces."""
    if sys.platform != "linux":
        pytest.skip("XDG_* variables are Linux's")
    for name in ("DATA", "CACHE", "CONFIG"):
        monkeypatch.delenv(f"AESTHETE_{name}_DIR")
        monkeypatch.setenv(f"XDG_{name}_HOME", str(tmp_path / f"my {name.lower()} folder"))
    server.files["/b.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/b.pth")))
    code, stdout, _ = run("pull", "tiny-backbone")
    assert code == 0 and stdout.strip() == str(tmp_path / "my cache folder" / "aesthete" / "weights" / "b.pth")
    assert run("add", str(nima_file), "--name", "mine")[0] == 0
    assert paths.user_registry_path(create=False) == tmp_path / "my config folder" / "aesthete" / "weights.toml"
    code, stdout, _ = run("verify", "--json")
    assert code == 0 and all(row["ok"] for row in json.loads(stdout)["verified"])
    assert len(json.loads(stdout)["verified"]) == 2


def test_verify_fails_a_pulled_file_changed_on_disk(server: FileServer, registry: Callable[[str], Path]) -> None:
    server.files["/b.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/b.pth")))
    path = weights.pull("tiny-backbone")
    stat = path.stat()
    with path.open("r+b") as handle:  # one byte flipped, size and mtime kept: only a rehash sees it
        handle.seek(1000)
        handle.write(bytes([PAYLOAD[1000] ^ 1]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    code, stdout, _ = run("verify")
    assert code == 1 and stdout == "FAILED tiny-backbone: sha256 mismatch\n"
    code, stdout, _ = run("verify", "tiny-backbone", "--json")
    assert json.loads(stdout) == {"verified": [{"name": "tiny-backbone", "ok": False, "reason": "sha256 mismatch"}]}


# --- weights remove ------------------------------------------------------------------------------------


def test_remove_a_download_frees_it_and_the_entry_stays_pullable(
    server: FileServer, registry: Callable[[str], Path]
) -> None:
    server.files["/b.pth"] = PAYLOAD
    registry(backbone_toml(server.url("/b.pth")))
    path = weights.pull("tiny-backbone")
    code, stdout, stderr = run("remove", "tiny-backbone", "--json")
    assert code == 0 and stderr == ""
    assert json.loads(stdout) == {
        "name": "tiny-backbone", "kind": "download", "deleted": [str(path)], "freed": len(PAYLOAD),
        "kept": None, "heads": [],
    }  # fmt: skip
    assert cache_files() == [] and not available("tiny-backbone")  # listed, no longer here
    assert weights.pull("tiny-backbone").read_bytes() == PAYLOAD  # and pullable again

    code, stdout, stderr = run("remove", "tiny-backbone")
    assert code == 0 and stderr == ""
    assert stdout.splitlines() == [
        "removed tiny-backbone (download): 3.1 MB freed",
        f"deleted {path}",
        "`aesthete weights pull tiny-backbone` gets it again",
    ]
    code, stdout, stderr = run("remove", "tiny-backbone")  # nothing there: said, and not an error
    assert (code, stdout, stderr) == (0, "", "nothing to remove: tiny-backbone is not downloaded\n")

    server.drop_after = 1000  # a cut download: its partial file is what takes the disk
    with pytest.raises(weights.WeightsError, match="interrupted"):
        weights.pull("tiny-backbone")
    assert cache_files() == ["b.pth.part"]
    assert weights.remove("tiny-backbone").deleted == [str(path) + ".part"]
    assert cache_files() == []


def test_remove_a_converted_download_deletes_its_digest_record_and_partial(registry: Callable[[str], Path]) -> None:
    registry("""
[weights.converted]
kind = "aesthetic"
arch = "nima"
bins = 10
format = "pyiqa-nima"
url = "https://example.org/files/NIMA_publisher.pth"
sha256_prefix = "0123abcd"
""")
    folder = paths.weights_cache_dir()
    (folder / "downloads").mkdir()
    made = [folder / "converted.safetensors", folder / "converted.safetensors.sha256"]
    made.append(folder / "downloads" / "NIMA_publisher.pth.part")
    for path in made:
        path.write_bytes(b"12345")
    removal = weights.remove("converted")
    assert removal.kind == "download" and removal.deleted == [str(p) for p in made] and removal.freed == 15
    assert not any(path.exists() for path in made)


def test_remove_added_weights_unregisters_them_and_never_touches_the_original(nima_file: Path) -> None:
    registry_file = paths.user_registry_path()
    registry_file.write_text("# my notes, kept\n", encoding="utf-8")
    original = nima_file.read_bytes()
    mine = weights.add(nima_file, name="mine")
    before = weights.resolve_weights("mine").weights_id
    other = weights.add(nima_file, name="other.v2")  # the same bytes under another name: its own copy
    written = registry_file.read_text(encoding="utf-8")

    code, stdout, stderr = run("remove", "mine", "--yes")
    assert code == 0 and stderr == ""
    assert stdout.splitlines() == [f"removed mine (unregistered): {weights.human_size(len(original))} freed",
                                   f"deleted {mine.path}"]  # fmt: skip
    assert nima_file.read_bytes() == original  # the file it was added from
    assert not mine.path.exists() and other.path.exists()
    text = registry_file.read_text(encoding="utf-8")
    assert text.startswith("# my notes, kept\n") and '[weights."mine"]' not in text
    assert text == written.replace(
        written[written.index('\n[weights."mine"]') : written.index('\n[weights."other.v2"]')], ""
    )
    assert [e.name for e in weights.list_weights() if e.origin == "user"] == ["other.v2"]
    assert weights.resolve_weights("other.v2").path == other.path
    with pytest.raises(weights.UnknownWeights):
        weights.resolve_weights("mine")
    # Scores are keyed by the file's digest and stay in the database: adding it again finds them.
    assert weights.add(nima_file, name="mine").available
    assert weights.resolve_weights("mine").weights_id == before

    assert weights.remove("other.v2").kind == "registered"
    assert weights.remove("mine").deleted == [str(mine.path)]
    assert registry_file.read_text(encoding="utf-8") == "# my notes, kept\n"
    assert cache_files() == []


def test_removing_the_only_copy_of_weights_is_confirmed_first(nima_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """aesthete's copy of added weights may be the only one (``add`` says the original may go), and a
    personal head is learned again only from the ratings: their deletion is asked for, or needs --yes."""
    mine = weights.add(nima_file, name="mine")
    size = weights.human_size(mine.path.stat().st_size)
    code, stdout, stderr = run("remove", "mine")  # no terminal to ask
    assert code == 2 and stdout == ""
    assert stderr == (
        f"error: removing mine deletes {mine.path} (aesthete's copy of weights you added), which cannot be "
        "undone: confirm with --yes\n"
    )
    assert mine.path.exists() and available("mine")
    assert weights.remove("mine", dry_run=True).deleted == [str(mine.path)] and mine.path.exists()

    monkeypatch.setattr(cli_weights, "sys", SimpleNamespace(stdin=SimpleNamespace(isatty=lambda: True)))
    for answer, code in (("n\n", 1), ("", 1)):  # no, and the end of input (Ctrl-D)
        result = CliRunner().invoke(app, ["remove", "mine"], input=answer)
        assert result.exit_code == code and result.stderr.endswith("nothing was removed\n")
        assert result.stderr.startswith(f"This deletes {mine.path} (aesthete's copy of weights you added, {size})")
        assert mine.path.exists() and available("mine")
    result = CliRunner().invoke(app, ["remove", "mine"], input="y\n")
    assert result.exit_code == 0 and not mine.path.exists()
    assert "mine" not in {e.name for e in weights.list_weights()}


def test_remove_a_hand_written_entry_keeps_a_file_aesthete_did_not_make(nima_file: Path) -> None:
    """An entry written by hand may point at the user's own file, and may be unusable (skipped): it is
    unregistered, and a file outside aesthete's cache is left where it is."""
    registry_file = paths.user_registry_path()
    registry_file.write_text(
        f'[weights.theirs]\nkind = "aesthetic"\narch = "nima"\nbins = 10\npath = "{nima_file}"\n'
        f'sha256 = "{sha256_of(nima_file)}"\n\n[weights.broken]\nkind = "nope"\n',
        encoding="utf-8",
    )
    code, stdout, _ = run("remove", "theirs")
    assert code == 0 and stdout.splitlines() == [
        "removed theirs (unregistered): 0 B freed",
        f"kept {nima_file} (not a copy aesthete made)",
    ]
    assert nima_file.exists()
    removal = weights.remove("broken")  # skipped as unusable, still removable
    assert (removal.kind, removal.deleted, removal.kept) == ("registered", [], None)
    assert registry_file.read_text(encoding="utf-8") == ""


def test_remove_refuses_a_registry_it_cannot_cut_safely(nima_file: Path) -> None:
    """A table written inline (no header of its own) is left for the user to remove."""
    entry = weights.add(nima_file, name="mine")
    registry_file = paths.user_registry_path()
    text = f'[weights]\nmine2 = {{ kind = "aesthetic", arch = "nima", bins = 10, path = "{entry.path}", '
    text += f'sha256 = "{entry.sha256}" }}\n'
    registry_file.write_text(text, encoding="utf-8")
    code, stdout, stderr = run("remove", "mine2")
    assert code == 2 and stdout == ""
    assert (
        stderr == f"error: {registry_file}: cannot take [weights.mine2] out of it safely; remove that table by hand\n"
    )
    assert registry_file.read_text(encoding="utf-8") == text and entry.path.exists()


def test_remove_with_a_registry_that_cannot_be_rewritten_removes_nothing(
    nima_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = weights.add(nima_file, name="mine")

    def read_only(path: object, text: str) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(weights.fileops, "atomic_write_text", read_only)
    code, stdout, stderr = run("remove", "mine", "--yes")
    assert code == 2 and stdout == ""
    registry_file = paths.user_registry_path()
    assert stderr == f"error: cannot rewrite {registry_file} (Read-only file system); nothing was removed\n"
    assert entry.path.exists() and available("mine")


def test_remove_a_personal_head_and_the_note_about_heads_learned_on_removed_weights(nima_file: Path) -> None:
    import numpy as np

    from aesthete import personal

    weights.add(nima_file, name="base")
    zeros = np.zeros(3, dtype=np.float32)
    head = personal.Head("ridge", zeros, 3.0, zeros, zeros + 1, {}, 1.0, base_model="nima", base_weights="base")
    path = learning.save(head, "taste", None)
    code, stdout, stderr = run("remove", "base", "-y")
    assert code == 0 and stdout.startswith("removed base (unregistered)")
    assert stderr == "note: personal head taste was learned on base: `score --weights taste` needs base back\n"
    code, stdout, stderr = run("remove", "taste", "--json", "--yes")
    assert code == 0 and json.loads(stdout)["kind"] == "personal" and json.loads(stdout)["deleted"] == [str(path)]
    assert not path.exists() and learning.list_heads() == []


def test_remove_an_unknown_name_is_one_line() -> None:
    code, stdout, stderr = run("remove", "nope")
    assert code == 2 and stdout == "" and stderr.startswith("error: unknown weights 'nope' (known: ")
    assert stderr.count("\n") == 1
