"""The public Python API (``import aesthete``) and the one table of model names it lists."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import aesthete
from aesthete.architectures import ARCHITECTURES, Architecture, UnknownModelError, check_architecture, model_names

TORCH_NAMES = {"get_model"}  # the one public name whose module imports torch


def test_import_aesthete_imports_no_torch_and_every_other_name_resolves_without_it() -> None:
    names = sorted(set(aesthete.__all__) - TORCH_NAMES)
    code = (
        "import sys, aesthete\n"
        "assert 'torch' not in sys.modules, 'import aesthete imported torch'\n"
        f"for name in {names!r}:\n"
        "    getattr(aesthete, name)\n"
        "assert 'torch' not in sys.modules, 'a public name imported torch'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", sorted(aesthete.__all__))
def test_each_public_name_is_the_object_its_module_defines(name: str) -> None:
    module, attribute = aesthete._API[name]
    assert getattr(aesthete, name) is getattr(importlib.import_module(module), attribute)
    assert name in dir(aesthete)


def test_all_lists_exactly_the_api_table() -> None:
    assert sorted(aesthete.__all__) == sorted(aesthete._API) and len(set(aesthete.__all__)) == len(aesthete.__all__)


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        aesthete.nonsense  # noqa: B018 - the lookup is the test
    assert not hasattr(aesthete, "nonsense")


def test_the_api_ranks_and_culls_a_store(tmp_path: Path) -> None:
    store = aesthete.open_store(tmp_path / "a.db")
    try:
        ranking = aesthete.rank(store, by="mean")
        assert isinstance(ranking, aesthete.Ranking) and ranking.rows == []
        with pytest.raises(aesthete.OptionError, match="unknown sort key"):
            aesthete.rank(store, by="colour")
        # Nothing scored yet: an AestheteError a caller can catch as a whole family.
        with pytest.raises(aesthete.AestheteError, match="nothing scored yet"):
            aesthete.cull(store)
    finally:
        store.close()


def test_list_models_is_the_torch_free_table() -> None:
    assert aesthete.list_models() == sorted(ARCHITECTURES)
    assert "pear-prior" in aesthete.list_models() and "pear-prior" not in aesthete.list_models(scoring=True)
    assert model_names("pear*") == ["pear", "pear-prior"] and model_names(exclude="*-*") == [
        "apm", "nima", "pear", "saf",
    ]  # fmt: skip
    assert all(isinstance(arch, Architecture) and arch.name == name for name, arch in ARCHITECTURES.items())


def test_check_architecture_names_the_known_and_the_scoring_models() -> None:
    assert check_architecture("nima") == "nima" and check_architecture("pear-prior") == "pear-prior"
    with pytest.raises(UnknownModelError, match="unknown model 'vit'; known models: apm, hla-gcn") as unknown:
        check_architecture("vit")
    assert isinstance(unknown.value, KeyError) and isinstance(unknown.value, aesthete.AestheteError)
    with pytest.raises(UnknownModelError, match="'pear-prior' never scores photos; models that do: apm"):
        check_architecture("pear-prior", scoring=True)


def test_registered_models_derive_from_the_table() -> None:
    torch = pytest.importorskip("torch")
    from aesthete.models import get_model, list_models, register_model

    assert list_models() == sorted(ARCHITECTURES)
    for name, arch in ARCHITECTURES.items():
        with torch.device("meta"):
            model = get_model(name)
        assert model.arch == name and model.scores_photos is arch.scores_photos
        assert type(model).__module__ == f"aesthete.models.{arch.module}"
    with pytest.raises(ValueError, match="not listed in aesthete.architectures.ARCHITECTURES"):
        register_model("vit")(lambda: None)
    with pytest.raises(ValueError, match="listed as built in nima"):
        register_model("nima")(lambda: None)  # a builder from another module than the table says
    with pytest.raises(UnknownModelError):
        get_model("vit")


def test_one_folder_may_be_given_as_a_string_or_a_path_and_top_must_be_positive(tmp_path: Path) -> None:
    """The field test's `aesthete.score("photos", ...)` walked "p", "h", "o"... (a str is a sequence of
    characters) and found nothing; `rank(store, top=-1)` sliced off the last photo."""
    from imagegen import encode, scene

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        (folder / f"p{i}.jpg").write_bytes(encode(scene(i, (64, 48))))
    store = aesthete.open_store(tmp_path / "a.db")
    try:
        summary = aesthete.score(str(folder), store=store, workers=1)
        assert (summary.found, summary.analysed, summary.discovery_errors) == (3, 3, [])
        for roots in (str(folder), folder, [folder]):
            assert len(aesthete.rank(store, roots).rows) == 3
            assert len(aesthete.cull(store, roots, top=2).rows) == 2
        for top in (0, -1, 1.5):
            with pytest.raises(aesthete.OptionError, match="--top takes a whole number of photos, at least 1"):
                aesthete.rank(store, top=top)
            with pytest.raises(aesthete.OptionError, match="--top takes a whole number"):
                aesthete.cull(store, top=top)
    finally:
        store.close()
