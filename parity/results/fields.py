"""The fields of a JSON document parity reads back (a shard's result file, a snapshot manifest): an input
like any other, checked field by field before anything reads it, so a malformed one is a usage error that
names the file and field (exit 2), never a KeyError deep inside parity (exit 3)."""

from __future__ import annotations

from numbers import Real
from pathlib import Path


def require(path: Path, where: str, value, spec: dict) -> None:
    """Refuse ``value`` unless it is an object with ``spec``'s keys, each of its kind: a type, a tuple of
    types (None for null), or a set of allowed strings. ``where`` names ``value`` in the document."""
    from parity.errors import ParityUsageError

    if not isinstance(value, dict):
        raise ParityUsageError(f"{path}: {where or 'the document'}: expected an object, found {shown(value)}")
    for key, kind in spec.items():
        field = f"{where}.{key}" if where else key
        if key not in value:
            raise ParityUsageError(f"{path}: {field}: missing")
        require_value(path, field, value[key], kind)


def require_value(path: Path, field: str, found, kind) -> None:
    """Refuse ``found`` unless it is of ``kind`` (as in :func:`require`)."""
    from parity.errors import ParityUsageError

    if isinstance(kind, set):
        if not isinstance(found, str) or found not in kind:
            raise ParityUsageError(f"{path}: {field}: expected one of {sorted(kind)}, found {shown(found)}")
        return
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not _is(found, kinds):
        names = " or ".join(_NAMES.get(k, getattr(k, "__name__", str(k))) for k in kinds)
        raise ParityUsageError(f"{path}: {field}: expected {names}, found {shown(found)}")


_NAMES = {None: "null", Real: "a number", str: "string", int: "integer", bool: "true or false", dict: "an object", list: "a list"}


def _is(value, kinds: tuple) -> bool:
    if value is None:
        return None in kinds
    if isinstance(value, bool):  # JSON true is not a number
        return bool in kinds
    return any(k is not None and isinstance(value, k) for k in kinds)


def shown(value) -> str:
    """A value as an error message quotes it: short."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
