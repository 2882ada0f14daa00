"""The wheel carries what a non-editable install needs: the weights registry and the training recipes, at
the places the code looks. (``.ci/run`` also installs the wheel into a fresh venv and runs the CLI.)"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["aesthete", "train", "pyproject.toml", "setup.py", "README.md", "weights.toml"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources (an in-tree build would leave build/ in the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                            "--wheel-dir", str(work / "dist"), str(source)],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stderr
    (found,) = (work / "dist").glob("aesthete_photo-*.whl")
    return found


def test_the_wheel_ships_the_registry_and_every_recipe(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "aesthete/weights.toml" in names
    recipes = {Path(name).name for name in names if name.startswith("aesthete/recipes/")}
    assert recipes == {path.name for path in (ROOT / "train").glob("*.toml")}
    assert zipfile.ZipFile(wheel).read("aesthete/weights.toml") == (ROOT / "weights.toml").read_bytes()
    assert "aesthete/templates/report.html" in names and "aesthete/facedata/face_landmark.tflite" in names


def test_code_from_the_wheel_finds_its_packaged_files(wheel: Path, tmp_path: Path) -> None:
    """Unpacked wheel on the path, run from elsewhere: the registry and recipes come from inside it."""
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    probe = (
        "import aesthete, sys\n"
        "from aesthete.weights import project_registry_path, list_weights\n"
        "from aesthete.training.recipes import recipes_dir, list_recipes\n"
        "print(aesthete.__file__); print(project_registry_path()); print(recipes_dir())\n"
        "print(len(list_weights()), len(list_recipes()))\n"
    )
    env = {"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    module, registry, recipes, counts = run.stdout.splitlines()
    assert all(Path(p).is_relative_to(unpacked) for p in (module, registry, recipes))
    assert counts == f"{len(list_project_weights())} {len(list(ROOT.joinpath('train').glob('*.toml')))}"


def list_project_weights() -> list[str]:
    import tomllib

    return list(tomllib.loads((ROOT / "weights.toml").read_text(encoding="utf-8")).get("weights", {}))
