"""Run parity as in a serving image: importing torch, torchvision, mmpretrain, mmcv, mmengine or timm raises.

    python serving_env.py parity check cfg.py --reference ref/
    python serving_env.py pytest --parity-config cfg.py --parity-reference ref/

Prints which of those modules got imported anyway (none, or the test fails) after the run.
"""

import importlib.abc
import sys

TRAINING = {"torch", "torchvision", "mmpretrain", "mmcv", "mmengine", "timm"}


class TrainingStackAbsent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in TRAINING:
            raise ModuleNotFoundError(f"No module named {name!r} (serving environment)", name=name)
        return None


if __name__ == "__main__":
    sys.meta_path.insert(0, TrainingStackAbsent())
    tool, args = sys.argv[1], sys.argv[2:]
    if tool == "parity":
        from parity.cli import main
    else:
        import pytest

        main = pytest.main
    try:
        code = main(args)
    finally:
        leaked = sorted(m for m in sys.modules if m.partition(".")[0] in TRAINING)
        print(f"training modules imported: {leaked or 'none'}")
    sys.exit(int(code))
