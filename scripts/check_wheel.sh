#!/usr/bin/env bash
# Build parity's wheel and use it as a new user's project would: a fresh venv with the wheel installed
# (the checkout is not on its path), reusing .venv's already-installed dependencies through a .pth line
# rather than downloading them again. Everything runs from a temporary folder, removed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/parity-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$root/.venv/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" "$root"
"$("$root/.venv/bin/python" -c 'import sys; print(sys._base_executable)')" -m venv "$work/venv"
site() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
site "$root/.venv/bin/python" > "$(site "$work/venv/bin/python")/_parity_reuse_dependencies.pth"
"$work/venv/bin/python" -m pip install -q --no-deps --no-index "$work"/dist/parity-*.whl
cd "$work"
set -x
venv/bin/parity --version
venv/bin/python -c "import parity, sys; assert parity.__file__.startswith(sys.prefix), parity.__file__; print('imported from', parity.__file__)"
venv/bin/parity suggest 'mmpretrain::resnet/resnet50_8xb32_in1k.py' --out suggested --random-images 4
venv/bin/parity snapshot "$root/fixtures/seed/parity_deployed.py" --out ref -q
code=0
venv/bin/parity check "$root/fixtures/seed/parity_deployed.py" --reference ref -q --json result.json || code=$?
venv/bin/python -c "import json; d = json.load(open('result.json')); print('check against the snapshot:', d['verdict'], d['exit_code'])"
[ "$code" -eq 1 ]  # the seed's deployed pipeline is the bug parity exists to catch
