"""Output files and folders: checked before any work (a run never fails at its last step on an unwritable
path), and folders written whole: built beside their target, then renamed into place, so a failed or
concurrent run never leaves a mix of two runs' files."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from parity.errors import ParityUsageError


def check_writable(path: Path, what: str) -> None:
    """Refuse ``path`` (a file or folder to write) when an ancestor is a file or the nearest existing folder
    above it cannot be written."""
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ParityUsageError(f"{what} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ParityUsageError(f"{what} {path}: {ancestor} is not writable")
    if path.is_dir() and what != "--report" and what != "--out":
        raise ParityUsageError(f"{what} {path}: is a folder; give a file name")


def check_output_folder(target: Path, marker: str, what: str) -> None:
    """Refuse ``target`` (a folder to write) unless it is missing, empty, or an earlier output (it holds
    ``marker``): a folder of the user's own files is never written into."""
    check_writable(target, what)
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / marker).exists())):
        raise ParityUsageError(f"{what} {target}: exists and is not a parity output folder (no {marker}); name a "
                               "new or empty folder")


def fresh_folder(target: Path, marker: str, what: str) -> Path:
    """A new folder beside ``target`` to build its contents in. ``target`` may be missing, empty, or an earlier
    output (it holds ``marker``); anything else is refused rather than overwritten."""
    check_output_folder(target, marker, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    work.chmod(0o777 & ~umask)  # mkdtemp's folder is private; an output folder is an ordinary one
    return work


def publish(work: Path, target: Path) -> None:
    """Move a finished folder into place; an earlier one there is removed only afterwards."""
    if os.path.ismount(target):
        _fill(work, target)
        return
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    work.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fill(work: Path, target: Path) -> None:
    """A mount point (a CI volume) cannot be renamed (EBUSY): its earlier contents are removed and the new
    ones moved in, entry by entry. It was checked empty or parity's own before the run began."""
    for entry in target.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in work.iterdir():
        shutil.move(str(entry), str(target / entry.name))
    shutil.rmtree(work, ignore_errors=True)


def refuse_inputs(args, inputs) -> None:
    """Refuse ``--json`` or ``--junit-xml`` naming one of the run's input files, before any work: a result file
    written over the config or an image would destroy what it reports on. The refused path is dropped from
    ``args``, so the result files written on a usage error do not land there either."""
    inputs = [Path(p) for p in inputs if p is not None]
    json, junit = getattr(args, "json", None), getattr(args, "junit_xml", None)
    if json is not None and junit is not None and _same_file(json, junit):
        args.junit_xml = None
        raise ParityUsageError(f"--junit-xml {junit}: is also --json; name two files")
    for attr in ("json", "junit_xml"):
        path = getattr(args, attr, None)
        clash = next((p for p in inputs if _same_file(path, p)), None) if path is not None else None
        if clash is not None:
            setattr(args, attr, None)
            flag = "--" + attr.replace("_", "-")
            raise ParityUsageError(f"{flag} {path}: is an input of this run ({clash}); name a new file")


def config_inputs(config) -> list:
    """The files a loaded parity config reads: the config, its images, the snapshot's manifest, the pipeline,
    the models."""
    dali, model = config.dali, config.model
    files = [config.reference.config, dali.serialized]
    if model is not None:
        files += [model.onnx, model.checkpoint, model.tensorrt, model.config]
    if dali.pipeline:
        files.append(dali.pipeline.rsplit(":", 1)[0])
    snapshot = [config.snapshot / "manifest.json"] if config.snapshot is not None else []
    return [config.path, *config.images, *snapshot,
            *(config.base_dir / f for f in files if isinstance(f, str) and "::" not in f)]


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:  # a symlink loop, a name too long: checked where it is read
        return False


@contextlib.contextmanager
def replaced_whole(path: Path):
    """A text file to write ``path`` through: a new file of an unpredictable name beside it, opened
    exclusively, renamed over ``path`` once complete and removed otherwise. A symlink planted there is
    replaced, never followed, and two runs writing the same path each leave a whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with open(handle, "w", encoding="utf-8") as out:
            yield out
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)  # mkstemp's file is private; an output file is an ordinary one
        os.replace(name, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        if isinstance(exc, OSError):  # a full disk, a read-only volume: the user's to fix, in one sentence
            raise ParityUsageError(f"{path}: cannot be written ({exc.strerror or exc})") from None
        raise
