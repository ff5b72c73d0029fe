#!/usr/bin/env bash
# Create .venv with parity and its real dependencies (about 2 minutes, 7 GB, mostly torch).
# torch 2.14.1 / torchvision 0.29.1 are pinned here, not in the package metadata: they are the CPU-usable
# pair our machines serve locally. Every extra but [gpu] (TensorRT and pycuda need CUDA) is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -U pip 'setuptools<81' wheel
.venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
.venv/bin/python -m pip install -q timm==1.0.31
.venv/bin/python -m pip install -q -e '.[reference,dali,onnx,triton,triton-server,report,timm,dev]'  # triton-server: the embedded server the tests start (numpy<2)
# The known-answer classifier for the model stage (deterministic, about 10 s, nothing downloaded).
[ -f fixtures/model/build/known_answer.onnx ] || .venv/bin/python -W ignore fixtures/model/make_model.py
[ -f fixtures/timm/build/vit_tiny.onnx ] || .venv/bin/python -W ignore fixtures/timm/make_model.py  # timm's, 5 s
# The seed's Triton model repositories (model.dali serialized from the pipelines, the ONNX linked).
[ -f fixtures/triton/build/seed_repository/preprocess/1/model.dali ] || .venv/bin/python -W ignore fixtures/triton/make_repository.py
.venv/bin/python -c "import parity, nvidia.dali, mmpretrain, torch; print('parity', parity.__version__, 'environment ready:', torch.__version__)"
