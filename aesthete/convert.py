"""Publishers' checkpoint files -> aesthete's self-describing safetensors checkpoints.

Each published checkpoint in ``weights.toml`` names a ``format``; a *recipe* here says which aesthete
architecture and config it becomes, which publisher file(s) it reads and how their tensor names map.
The result is checked tensor by tensor against the model before anything is written: a file that does
not fit is refused with one line naming the missing, misshapen and unexpected tensors.

Safety: nothing here runs code from a file.

- pyiqa's and LAION's ``.pth`` files are pickles. They are read only with
  ``torch.load(weights_only=True)`` (torch's restricted unpickler: tensors and plain containers), and
  ``aesthete.weights`` calls the conversion only after the file's sha256 matched the registry (or, for
  ``weights add --other-weights``, after the user said the file is theirs).
- OpenAI's ``ViT-L-14.pt`` is a TorchScript archive. It is never given to ``torch.jit.load`` (which
  would compile the archive's code): ``read_torchscript_tensors`` opens the zip, unpickles its
  ``data.pkl`` with an allowlist that admits only tensor rebuilding and opaque module records, and
  reads each storage from its own zip entry. So even an archive whose digest we could not check would
  run no code; the digest is still checked first.

Imports torch (lazily, inside functions): ``aesthete.weights`` stays torch-free until a conversion runs.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aesthete.checkpoint import CheckpointError, fit_report, load_torch_file

if TYPE_CHECKING:
    from torch import Tensor

    from aesthete.models.base import AestheticModel

StateDict = dict[str, "Tensor"]


# --- reading publisher files --------------------------------------------------------------------------


def read_torch_pickle(path: str | Path) -> StateDict:
    """Tensors of a ``.pth`` state dict, loaded with ``weights_only=True``; BasicSR/pyiqa's ``params``
    (or ``params_ema``/``state_dict``) wrapper is unwrapped."""
    import torch

    path = Path(path)
    if zipfile.is_zipfile(path) and _torchscript_prefix(path) is not None:
        raise CheckpointError(f"{path}: a TorchScript archive, not a state dict")
    state = load_torch_file(path)
    if isinstance(state, dict):
        for wrapper in ("params", "params_ema", "state_dict"):
            if isinstance(state.get(wrapper), dict):
                state = state[wrapper]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors")
    return dict(state)


def _torchscript_prefix(path: Path) -> str | None:
    """The archive's top folder if it is a TorchScript archive (it has ``<top>/code/``), else None."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    tops = {name.split("/", 1)[0] for name in names if "/" in name}
    for top in tops:
        if f"{top}/data.pkl" in names and any(n.startswith(f"{top}/code/") for n in names):
            return top
    return None


class _ScriptRecord:
    """A TorchScript object (module) from ``data.pkl``: only its attribute dict is kept."""

    def __init__(self, *args: Any) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}


_STORAGE_DTYPES = {
    "HalfStorage": "float16",
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "BoolStorage": "bool",
    "ByteStorage": "uint8",
}


class _StorageType:
    def __init__(self, dtype: str) -> None:
        self.dtype = dtype


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript ``data.pkl`` allowing only tensor rebuilding and opaque module records."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix = archive, prefix
        self.storages: dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("__torch__"):
            return _ScriptRecord
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, requires_grad, backward_hooks: data
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        import torch

        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("unexpected persistent id")
        _, storage_type, key, _location, numel = pid
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError("unexpected storage type")
        if key not in self.storages:
            raw = bytearray(self.archive.read(f"{self.prefix}/data/{key}"))
            dtype = getattr(torch, storage_type.dtype)
            flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            if flat.numel() != numel:
                raise pickle.UnpicklingError(f"storage {key} holds {flat.numel()} values, not {numel}")
            self.storages[key] = flat
        return self.storages[key]


def _rebuild_tensor(storage: Any, offset: int, size: Any, stride: Any, *_: Any) -> Any:
    return storage.as_strided(tuple(size), tuple(stride), offset)


def read_torchscript_tensors(path: str | Path) -> StateDict:
    """Every tensor attribute of a TorchScript archive's module tree, by dotted name (``visual.proj``),
    read without executing any of the archive's code (see the module docstring)."""
    path = Path(path)
    try:
        prefix = _torchscript_prefix(path) if zipfile.is_zipfile(path) else None
        if prefix is None:
            raise CheckpointError(f"{path}: not a TorchScript archive")
        with zipfile.ZipFile(path) as archive:
            root = _RestrictedUnpickler(archive.read(f"{prefix}/data.pkl"), archive, prefix).load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, KeyError, EOFError, ValueError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise CheckpointError(f"{path}: unreadable TorchScript archive ({reason})") from None
    import torch

    tensors: StateDict = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, torch.Tensor):
            tensors[name] = node.clone()  # own memory, not a view of the archive's buffer
        elif isinstance(node, _ScriptRecord):
            for key, value in node.state.items():
                walk(value, f"{name}.{key}" if name else str(key))

    walk(root, "")
    return tensors


# --- recipes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """How one publisher format becomes an aesthete model.

    ``parts`` names the publisher files the recipe reads (``main`` always; ``clip`` for LAION's head);
    ``rename`` maps (publisher tensors of every part) -> aesthete state dict; ``dropped`` explains
    tensors deliberately left out.
    """

    format: str
    arch: str
    config: dict[str, Any]
    parts: tuple[str, ...]
    rename: Callable[[dict[str, StateDict]], StateDict]
    dropped: str = ""


def _topiq_rename(parts: dict[str, StateDict]) -> StateDict:
    # The publisher's cross-attention layers hold a self-attention their forward never calls.
    return {k: v for k, v in parts["main"].items() if not (k.startswith("attn_blks.") and ".self_attn." in k)}


def _nima_rename(parts: dict[str, StateDict]) -> StateDict:
    out: StateDict = {}
    for key, value in parts["main"].items():
        if key.startswith("base_model.features_"):  # timm's flattened `features.N` -> `features_N`
            index, _, rest = key.removeprefix("base_model.features_").partition(".")
            out[f"features.{index}.{rest}"] = value
        elif key.startswith("classifier.2."):
            out["head." + key.removeprefix("classifier.2.")] = value
        else:
            out[key] = value  # reported as unexpected by the fit check
    return out


def _laion_rename(parts: dict[str, StateDict]) -> StateDict:
    clip = {k: v for k, v in parts["clip"].items() if k.startswith("visual.")}
    return {**clip, **parts["main"]}


def _recipes() -> dict[str, Recipe]:
    from aesthete.models.nima import NIMA_VGG16_PYIQA

    return {
        "pyiqa-topiq-iaa-res50": Recipe(
            "pyiqa-topiq-iaa-res50",
            "topiq-iaa",
            {},
            ("main",),
            _topiq_rename,
            "attn_blks.*.layers.0.self_attn.* (unused by the publisher's forward)",
        ),
        "pyiqa-nima-vgg16": Recipe("pyiqa-nima-vgg16", "nima", dict(NIMA_VGG16_PYIQA), ("main",), _nima_rename),
        "laion-aesthetic-head": Recipe(
            "laion-aesthetic-head",
            "laion-aesthetic",
            {},
            ("main", "clip"),
            _laion_rename,
            "CLIP's text tower and logit scale (not used for images)",
        ),
    }


def recipe(format_name: str) -> Recipe:
    recipes = _recipes()
    if format_name not in recipes:
        raise CheckpointError(f"unknown checkpoint format {format_name!r}; known: {', '.join(sorted(recipes))}")
    return recipes[format_name]


def read_part(path: str | Path) -> StateDict:
    """A publisher file's tensors, whichever of the two formats it is (TorchScript zip or state dict)."""
    path = Path(path)
    if zipfile.is_zipfile(path) and _torchscript_prefix(path) is not None:
        return read_torchscript_tensors(path)
    return read_torch_pickle(path)


def build_converted(format_name: str, files: dict[str, Path]) -> AestheticModel:
    """Read the publisher files (``files[part]`` for each of the recipe's parts) and return the aesthete
    model holding their tensors, in eval mode; raises ``CheckpointError`` (one line) when they do not fit."""
    import torch

    from aesthete.models import get_model

    spec = recipe(format_name)
    absent = [part for part in spec.parts if part not in files]
    if absent:
        raise CheckpointError(f"{format_name}: needs the {', '.join(absent)} file too")
    parts = {part: read_part(files[part]) for part in spec.parts}
    state = spec.rename(parts)
    model = get_model(spec.arch, **spec.config)
    problem = fit_report(model, {name: tuple(tensor.shape) for name, tensor in state.items()})
    if problem:
        raise CheckpointError(f"{files['main']}: does not fit {format_name} ({problem})")
    with torch.no_grad():
        model.load_state_dict(state, strict=True)  # copies (and casts fp16 archives to the model's fp32)
    return model.eval()


def convert(
    format_name: str, files: dict[str, Path], dest: str | Path, *, provenance: dict[str, Any] | None = None
) -> Path:
    """Convert publisher files into one aesthete safetensors checkpoint at ``dest`` (written atomically).

    ``provenance`` (licence, source URL, the publisher files' sha256, the entry it follows) goes into
    the checkpoint header beside arch, config, output and input policy.
    """
    from aesthete.checkpoint import save_checkpoint

    model = build_converted(format_name, files)
    extra = {"converted_from": {"format": format_name, **(provenance or {})}}
    for key in ("license", "source", "dataset"):
        if provenance and provenance.get(key):
            extra[key] = provenance[key]
    return save_checkpoint(model, dest, extra=extra)
