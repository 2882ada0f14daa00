#!/usr/bin/env bash
# Wheels for bench/gpu_check.sh on a lent GPU machine, downloaded here into .whl/ (the machine reaches no
# package index). Its image has Python 3.12, torch, torchvision, numpy, Pillow, typer, rich and safetensors
# (do not carry typer: 0.29 needs pydantic, which the image lacks); aesthete also needs the packages
# below, at the versions this checkout's virtualenv runs. TorchCodec is left out: its wheel is built for
# one torch release, and the image's torch (2.11) is older than this venv's.
#
#   bash bench/gpu_wheels.sh      # then: device run with carry [".whl"], command `bash bench/gpu_check.sh`
set -eu
PY=${PYTHON:-.venv/bin/python}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
pins=()
for name in exifread sqlite-utils sqlite-fts4 click-default-group platformdirs rawpy; do
  pins+=("$name==$($PY -m pip show "$name" | sed -n 's/^Version: //p')")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
ls .whl
