"""Only to ship the project's data files inside the package: everything else is in pyproject.toml.

``weights.toml`` (the registry) and ``train/*.toml`` (the training recipes) live at the repository root,
where people edit them and the docs point. A wheel has no root, so the build copies them to
``aesthete/weights.toml`` and ``aesthete/recipes/``, the places the code looks first
(``weights.project_registry_path``, ``training.recipes.recipes_dir``). Editable installs and a checkout on
``PYTHONPATH`` keep reading the root files.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# (source, destination inside the package): the one list of root files a wheel carries.
PACKAGED = [(ROOT / "weights.toml", Path("aesthete/weights.toml"))] + [
    (recipe, Path("aesthete/recipes") / recipe.name) for recipe in sorted((ROOT / "train").glob("*.toml"))
]


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the root files in place
            return
        for source, destination in PACKAGED:
            target = Path(self.build_lib) / destination
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildWithData})
