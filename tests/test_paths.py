"""Where aesthete keeps files: environment overrides, platform defaults, and lazy directory creation."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aesthete import paths


def test_overrides_are_used_and_created_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATA", "CACHE", "CONFIG"):
        monkeypatch.setenv(f"AESTHETE_{name}_DIR", str(tmp_path / "nested" / name.lower()))
    getters = {"data": paths.data_dir, "cache": paths.cache_dir, "config": paths.config_dir}
    for name, getter in getters.items():
        expected = tmp_path / "nested" / name
        assert getter(create=False) == expected
        assert not expected.exists()
        assert getter() == expected
        assert expected.is_dir()


def test_derived_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AESTHETE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("AESTHETE_CONFIG_DIR", str(tmp_path / "config"))
    assert paths.weights_cache_dir(create=False) == tmp_path / "cache" / "weights"
    assert not (tmp_path / "cache").exists()
    assert paths.weights_cache_dir().is_dir()
    assert paths.user_registry_path() == tmp_path / "config" / "weights.toml"
    assert not paths.user_registry_path().exists()  # the directory is made, never the file


def test_database_path_default_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AESTHETE_DATA_DIR", str(tmp_path / "data"))
    assert paths.default_db_path() == tmp_path / "data" / "aesthete.db"
    monkeypatch.setenv("AESTHETE_DB", str(tmp_path / "elsewhere" / "photos.db"))
    assert paths.default_db_path(create=False) == tmp_path / "elsewhere" / "photos.db"
    assert not (tmp_path / "elsewhere").exists()
    assert paths.default_db_path().parent.is_dir()
    monkeypatch.setenv("AESTHETE_DB", "")  # set but empty means unset, as in most tools
    assert paths.default_db_path() == tmp_path / "data" / "aesthete.db"


def test_tilde_in_overrides_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AESTHETE_CACHE_DIR", "~/c")
    assert paths.cache_dir(create=False) == tmp_path / "c"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG variables apply on Linux")
def test_xdg_defaults_without_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATA", "CACHE", "CONFIG"):
        monkeypatch.delenv(f"AESTHETE_{name}_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert paths.data_dir() == tmp_path / "share" / "aesthete"
    assert paths.cache_dir() == tmp_path / "cache" / "aesthete"
    assert paths.config_dir() == tmp_path / "config" / "aesthete"
    assert paths.default_db_path() == tmp_path / "share" / "aesthete" / "aesthete.db"


def test_is_within_compares_whole_folder_names() -> None:
    assert paths.is_within("/photos/2024/a.jpg", "/photos")
    assert paths.is_within("/photos", "/photos") and paths.is_within("/photos/a.jpg", "/photos/")
    assert not paths.is_within("/photos-old/a.jpg", "/photos")  # a sibling sharing the name's start
    assert not paths.is_within("/photo", "/photos")
    assert paths.is_within("/anything", "/")  # the file system root holds everything
    assert paths.subtree_prefix("/photos/") == paths.subtree_prefix("/photos") == "/photos/"
    assert paths.subtree_prefix("/") == "/"


def test_opening_no_database_to_read_makes_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rank` before any `score`: "nothing scored yet", and no data folder left behind (field test)."""
    from aesthete.errors import NothingToDoError
    from aesthete.store import open_store

    monkeypatch.setenv("AESTHETE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AESTHETE_DB", raising=False)
    with pytest.raises(NothingToDoError, match="nothing scored yet"):
        open_store(create=False)
    assert not (tmp_path / "data").exists()
