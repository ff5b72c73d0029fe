"""Read a parity config file: mmengine-style Python (plain assignments, ``_base_`` files merged into it),
without importing mmengine, so that a serving environment with no training stack reads the same file.

MMPretrain's own configs are not read here: they go through mmengine (the ``reference`` extra), which
also resolves their package-scoped bases and ``read_base()`` imports.
"""

from __future__ import annotations

import runpy
import types
from pathlib import Path

from parity.errors import ParityConfigError

_NOT_DATA = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)


def read_config_file(path: Path, _chain: tuple = ()) -> dict:
    """The config's variables (those not starting with an underscore), its ``_base_`` files merged first
    as mmengine merges them: dicts key by key (``_delete_=True`` replaces), anything else replaced."""
    path = Path(path).resolve()
    if path in _chain:
        raise ParityConfigError(f"{_chain[-1]}: _base_ {path.name!r} includes itself ("
                                f"{' -> '.join(p.name for p in (*_chain, path))})")
    if not path.is_file():
        where = f"{_chain[-1]}: _base_ file not found: " if _chain else "parity config not found: "
        raise ParityConfigError(f"{where}{path}")
    try:
        namespace = runpy.run_path(str(path), run_name="__parity_config__")
    except (Exception, SystemExit) as exc:  # SystemExit: a config that calls sys.exit() or argparse
        raise ParityConfigError(f"{path}: cannot be read as a parity config: {type(exc).__name__}: {exc}") from None
    bases = namespace.get("_base_", [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, (list, tuple)) or not all(isinstance(b, str) for b in bases):
        raise ParityConfigError(f"{path}: _base_={bases!r}: expected a file name or a list of them")
    merged: dict = {}
    for base in bases:
        if "::" in base:
            raise ParityConfigError(f"{path}: _base_ {base!r} is a package config; a parity config's _base_ names "
                                    "parity config files beside it (MMPretrain configs go in reference.config)")
        merged = _merge(merged, read_config_file(path.parent / base, (*_chain, path)))
    own = {k: v for k, v in namespace.items() if not k.startswith("_") and not isinstance(v, _NOT_DATA)}
    return _merge(merged, own)


def _merge(base: dict, child: dict) -> dict:
    out = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not value.get("_delete_"):
            out[key] = _merge(out[key], value)
        else:
            out[key] = {k: v for k, v in value.items() if k != "_delete_"} if isinstance(value, dict) else value
    return out
