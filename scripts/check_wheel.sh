#!/usr/bin/env bash
# Build parity's wheel and use it as a new user's project would: a fresh venv with the wheel installed
# (the checkout is not on its path), reusing .venv's already-installed dependencies through a .pth line
# rather than downloading them again (offline: no index). A second venv is a serving image: the same
# dependencies without the training stack (torch, torchvision, timm, MMPretrain, MMCV, MMEngine), where a
# timm snapshot recorded in the first is checked. Everything runs from a temporary folder, removed at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/parity-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$root/.venv/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" "$root"
base=$("$root/.venv/bin/python" -c 'import sys; print(sys._base_executable)')
site() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
dependencies=$(site "$root/.venv/bin/python")
# the serving image's dependencies: links to .venv's, the training stack left out
mkdir "$work/serving-site"
for entry in "$dependencies"/*; do
  case "$(basename "$entry")" in
    torch | torch-* | torchvision | torchvision-* | torchvision.libs | torchgen | functorch | timm | timm-* | \
      mmpretrain | mmpretrain-* | mmcv | mmcv_lite-* | mmengine | mmengine-* | *.pth) ;;
    *) ln -s "$entry" "$work/serving-site/" ;;
  esac
done
for env in venv serving; do
  "$base" -m venv "$work/$env"
  "$work/$env/bin/python" -m pip install -q --no-deps --no-index "$work"/dist/parity-*.whl
done
echo "$dependencies" > "$(site "$work/venv/bin/python")/_parity_reuse_dependencies.pth"
echo "$work/serving-site" > "$(site "$work/serving/bin/python")/_parity_reuse_dependencies.pth"
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
# timm's ViT: recorded where timm lives, checked where neither torch nor timm can be imported
venv/bin/parity snapshot "$root/fixtures/timm/parity_vit_corrected.py" --out vit-ref -q
serving/bin/python -c "import importlib.util as u; absent = [m for m in ('torch', 'timm', 'torchvision', 'mmpretrain', 'mmcv', 'mmengine') if u.find_spec(m) is None]; print('serving image lacks:', *absent)"
serving/bin/parity check "$root/fixtures/timm/parity_vit_corrected.py" --reference vit-ref -q --json vit-corrected.json
code=0
serving/bin/parity check "$root/fixtures/timm/parity_vit_deployed.py" --reference vit-ref -q --json vit-deployed.json || code=$?
serving/bin/python -c "import json; d = json.load(open('vit-deployed.json')); print('timm snapshot, deployed ViT pipeline:', d['verdict'], d['exit_code'], sorted({c['kind'] for i in d['images'] for s in i['stages'] for c in s['causes']}))"
[ "$code" -eq 1 ]  # its resize follows crop_pct 0.875, the checkpoint's is 0.9
