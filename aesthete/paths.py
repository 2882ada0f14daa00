"""Where aesthete keeps its files, following the platform's conventions (XDG on Linux) via platformdirs.

Each location can be moved with an environment variable, so tests and sandboxes never touch the real
home directory. Directories are created when asked for (``create=True``), never at import, and
readers pass ``create=False`` so that merely listing things works on a read-only home.

It also says whether a path lies under a folder (:func:`is_within`), the one test ``rank``, ``failures``
and ``cull`` apply to the roots they are given. platformdirs is imported only when a default location is
needed, so the store (and the decode workers) can use these helpers for free.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

APP_NAME = "aesthete"


Paths = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]  # one path, or several


def path_list(paths: Paths) -> list[str]:
    """Paths as a list of strings: one path given on its own, or several. A single ``str`` is one folder to a
    caller of the Python API, never the sequence of characters it also is."""
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(path) for path in paths]


def subtree_prefix(root: str) -> str:
    """What every path strictly below ``root`` starts with: ``root`` and one separator (``/`` stays ``/``)."""
    return root.rstrip(os.sep) + os.sep


def is_within(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or lies below it, compared as text (``/a/bc`` is not within ``/a/b``).

    Callers normalise both sides the same way first: ``os.path.abspath`` to compare recorded paths,
    ``os.path.realpath`` where a symlink must not hide that one folder is inside another."""
    return path == root or path.startswith(subtree_prefix(root))


def _location(env: str, default: str, create: bool) -> Path:
    """``$env``, else platformdirs' ``default`` location (a function name) for aesthete."""
    value = os.environ.get(env)
    if value:
        path = Path(value).expanduser()
    else:
        import platformdirs  # ~20 ms: only when no override names the folder

        path = Path(getattr(platformdirs, default)(APP_NAME, appauthor=False))
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir(*, create: bool = True) -> Path:
    """User data (the score database): ``$AESTHETE_DATA_DIR`` or e.g. ``~/.local/share/aesthete``."""
    return _location("AESTHETE_DATA_DIR", "user_data_dir", create)


def cache_dir(*, create: bool = True) -> Path:
    """Re-creatable files (downloaded weights): ``$AESTHETE_CACHE_DIR`` or e.g. ``~/.cache/aesthete``."""
    return _location("AESTHETE_CACHE_DIR", "user_cache_dir", create)


def config_dir(*, create: bool = True) -> Path:
    """User settings (the user's weights registry): ``$AESTHETE_CONFIG_DIR`` or e.g. ``~/.config/aesthete``."""
    return _location("AESTHETE_CONFIG_DIR", "user_config_dir", create)


def default_db_path(*, create: bool = True) -> Path:
    """The score database: ``$AESTHETE_DB`` if set, else ``aesthete.db`` in the data directory.

    With ``create`` the parent directory of the file is made, so opening the database can succeed.
    """
    value = os.environ.get("AESTHETE_DB")
    if not value:
        return data_dir(create=create) / "aesthete.db"
    path = Path(value).expanduser()
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    return path


def weights_cache_dir(*, create: bool = True) -> Path:
    """Downloaded and added checkpoint files: ``weights`` in the cache directory."""
    path = cache_dir(create=create) / "weights"
    if create:
        path.mkdir(exist_ok=True)
    return path


def user_registry_path(*, create: bool = True) -> Path:
    """The user's own weights registry (written by ``aesthete weights add``)."""
    return config_dir(create=create) / "weights.toml"
