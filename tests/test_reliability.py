"""The fault catalogue (docs/reliability.md): each bad input or fault a CI job meets, through the `parity`
command as the job runs it (`parity check`, unless a row names another). Each must end in the documented exit code with one sentence naming the culprit: no
traceback, no silent pass, no stray process or temporary folder. Signals are in test_signals.py, stale
snapshots in test_snapshot.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from parity.cli import main

from .conftest import IMAGES, ROOT, SEED

MODEL = ROOT / "fixtures" / "model" / "build"
REPOS = ROOT / "fixtures" / "triton" / "build"
PIPELINE = f"{SEED / 'corrected_pipeline.py'}:hrnet_w30_cls_preprocess_pipeline"
MODEL_SECTION = (f"dict(config='mmpretrain::resnet/resnet18_8xb32_in1k.py', checkpoint={str(MODEL / 'known_answer.pth')!r}, "
                 f"onnx={str(MODEL / 'known_answer.onnx')!r})")


def _bomb(path: Path, width: int, height: int) -> Path:
    """A valid PNG header declaring ``width`` x ``height`` RGB pixels, with 16 rows of data: a few KB."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = zlib.compress(b"".join(b"\x00" * (1 + 3 * width) for _ in range(16)))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def _over_limit(case) -> str:
    import os

    os.environ["PARITY_MAX_PIXELS"] = "100000"  # test_fault's monkeypatch restores it
    return case.config()


class Case:
    """A user's project in a temporary folder: two photos and a parity config that passes until a fault is
    put in."""

    def __init__(self, folder: Path):
        self.folder = folder
        (folder / "images").mkdir()
        for name in ("astronaut", "chelsea"):
            shutil.copy(IMAGES / f"{name}.png", folder / "images")

    def config(self, text: str = "", **sections: str) -> str:
        """Write parity_cfg.py; ``sections`` replace the defaults (Python source), ``text`` is appended."""
        defaults = dict(reference=f"dict(config={str(SEED / 'hrnet_w30_512x384.py')!r})",
                        dali=f"dict(pipeline={PIPELINE!r}, input_name='INPUT_PREPROCESS')", images="['images']")
        body = "".join(f"{key} = {value}\n" for key, value in {**defaults, **sections}.items() if value is not None)
        (self.folder / "parity_cfg.py").write_text(body + text)
        return str(self.folder / "parity_cfg.py")

    def pipeline(self, body: str, header: str = "") -> str:
        """A pipeline module whose function returns ``body``'s last expression; returns 'file.py:f'."""
        (self.folder / "pipe.py").write_text(
            "from nvidia.dali import fn, pipeline_def, types\n" + header +
            "\n@pipeline_def(batch_size=2, num_threads=1, device_id=0)\ndef f():\n"
            "    x = fn.external_source(name='INPUT_PREPROCESS')\n" + "".join(f"    {line}\n" for line in body.split("\n")))
        return repr(f"{self.folder / 'pipe.py'}:f")

    def image(self, name: str, array: np.ndarray, mode: str | None = "RGB") -> Path:
        path = self.folder / "images" / name
        Image.fromarray(array if mode is None else array.astype(np.uint8), mode).save(path, format="PNG")
        return path

    def repository(self) -> Path:
        repo = self.folder / "repo"
        shutil.copytree(REPOS / "corrected_repository", repo, symlinks=True)
        return repo

    def triton_config(self, repo: Path, extra: str = "") -> str:
        return self.config(model=MODEL_SECTION, triton=f"dict(repository={str(repo)!r}{extra})")

    def shards(self, edit: Callable[[dict, dict], None] | None = None) -> list:
        """The result files (and reports) of a passing run in two shards, as CI jobs upload them; ``edit``
        changes the two documents before they are written here."""
        documents = [json.loads((self.shard_run / f"s{k}.json").read_text()) for k in (1, 2)]
        for k in (1, 2):
            shutil.copytree(self.shard_run / f"r{k}", self.folder / f"r{k}", symlinks=True)
        if edit is not None:
            edit(*documents)
        for k, document in zip((1, 2), documents):
            (self.folder / f"s{k}.json").write_text(json.dumps(document))
        return [self.folder / "s1.json", self.folder / "s2.json"]

    def snapshot(self, manifest: Callable[[dict], None] | None = None,
                 file: Callable[[Path], None] | None = None) -> list:
        """A snapshot of this config (recorded once per module), as the serving job downloads it; ``manifest``
        edits its manifest, ``file`` the .npz of its first image. Returns the `parity check` arguments."""
        ref = shutil.copytree(self.snapshot_run / "ref", self.folder / "ref")
        document = json.loads((ref / "manifest.json").read_text())
        if manifest is not None:
            manifest(document)
            (ref / "manifest.json").write_text(json.dumps(document))
        if file is not None:
            file(ref / json.loads((self.snapshot_run / "ref" / "manifest.json").read_text())["images"][0]["file"])
        return [self.config(), "--reference", ref]


@dataclass(frozen=True)
class Fault:
    id: str
    area: str
    fault: str
    handling: str  # what parity does, as the catalogue says it
    make: Callable[[Case], list]  # the command's arguments after the fault is put in
    code: int
    said: str  # in the output (stdout + stderr)
    command: str = "check"


def _dali(case: Case, body: str, header: str = "") -> list:
    return [case.config(dali=f"dict(pipeline={case.pipeline(body, header)}, input_name='INPUT_PREPROCESS')")]


def _serialized(case: Case, data: bytes) -> list:
    (case.folder / "model.dali").write_bytes(data)
    return [case.config(dali="dict(serialized='model.dali', input_name='INPUT_PREPROCESS')")]


def _seed_dali() -> bytes:
    return (REPOS / "corrected_repository" / "preprocess" / "1" / "model.dali").read_bytes()


def _truncated_dali() -> bytes:
    """The seed's model.dali cut after its first operators: it still parses, but its outputs are gone."""
    from parity.dali import proto as dali_proto

    pipe = dali_proto.PipelineDef()
    pipe.ParseFromString(_seed_dali())
    del pipe.op[2:]
    return pipe.SerializeToString()


def _onnx_with(case: Case, *, classes: int | None = None, size: tuple | None = None) -> list:
    import onnx

    model = onnx.load(str(MODEL / "known_answer.onnx"))
    if classes is not None:  # a head of another width: another model's export
        node = onnx.helper.make_node("Slice", ["logits_full", "s", "e", "a"], ["logits"])
        model.graph.output[0].name = "logits_full"
        for n in model.graph.node:
            n.output[:] = ["logits_full" if o == "logits" else o for o in n.output]
        model.graph.initializer.extend(onnx.numpy_helper.from_array(np.array([v], np.int64), k)
                                       for k, v in (("s", 0), ("e", classes), ("a", 1)))
        model.graph.node.append(node)
        model.graph.output.append(onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, None))
        del model.graph.output[0]
    if size is not None:  # exported at another input size
        dims = model.graph.input[0].type.tensor_type.shape.dim
        dims[2].dim_value, dims[3].dim_value = size
    onnx.save(model, str(case.folder / "model.onnx"))
    return [case.config(model=MODEL_SECTION.replace(str(MODEL / "known_answer.onnx"), str(case.folder / "model.onnx")))]


def _same_stem(case: Case) -> list:
    Image.open(IMAGES / "checker.png").save(case.folder / "images" / "same.png")
    Image.open(IMAGES / "gradient.png").convert("RGB").save(case.folder / "images" / "same.jpg", quality=98)
    return [case.config(images="['images/same.png', 'images/same.jpg']"), "--junit-xml",
            str(case.folder / "out.xml")]


def _symlink(case: Case, name: str, target: str) -> list:
    os.symlink(case.folder / target, case.folder / "images" / name)
    return [case.config()]


def _file_in_folder(case: Case, name: str, fmt: str) -> list:
    Image.open(IMAGES / "coffee.png").convert("RGB").save(case.folder / "images" / name, format=fmt)
    return [case.config(), "--json", str(case.folder / "r.json")]


def _report_twice(case: Case) -> list:
    report = case.folder / "report"
    assert main(["check", case.config(images="['images/chelsea.png']"), "--report", str(report), "-q"]) == 0
    (report / "stale.png").write_bytes(b"from an earlier run")
    return [case.config(images="['images/astronaut.png']"), "--report", str(report)]


def _triton_broken(case: Case, damage: Callable[[Path], None], extra: str = "") -> list:
    repo = case.repository()
    damage(repo)
    return [case.triton_config(repo, extra)]


def _holding(*documents) -> dict:
    """The shard document that holds images (which shard an image falls in is fixed by its content)."""
    return next(d for d in documents if d["images"])


def _failed_exit_0(first: dict, second: dict) -> None:
    document = _holding(first, second)
    document["images"][0]["stages"][-1]["status"] = "failed"
    document["images"][0]["passed"] = False  # the exit code still says 0


def _failed_marked_passed(first: dict, second: dict) -> None:
    _holding(first, second)["images"][0]["stages"][-1]["status"] = "failed"


def _overlap(first: dict, second: dict) -> None:
    other = second if first["images"] else first
    other["images"].append(_holding(first, second)["images"][0])


def _private_key(case: Case) -> Path:
    keys = case.folder.parent / "ssh"
    keys.mkdir()
    (keys / "id_rsa").write_text("-----BEGIN PRIVATE KEY-----\n")
    return keys / "id_rsa"


def _report_elsewhere(case: Case) -> list:
    keys = _private_key(case).parent
    return [*case.shards(lambda a, b: a.update(report=os.path.relpath(keys, case.folder))), "--report",
            case.folder / "merged"]


def _report_with_symlink(case: Case) -> list:
    key = _private_key(case)
    results = case.shards()
    os.symlink(key, case.folder / "r2" / "sections" / "p-key.html")
    return [*results, "--report", case.folder / "merged"]


def _junit_spool_planted(case: Case) -> list:
    """Symlinks planted where the JUnit cases used to be spooled (`.out.xml.cases`) and at the file itself."""
    (case.folder / "victim.txt").write_text("not parity's\n")
    for name in (".out.xml.cases", "out.xml"):
        os.symlink(case.folder / "victim.txt", case.folder / name)
    return [case.config(), "--junit-xml", case.folder / "out.xml"]


def _users_own_pipeline(case: Case) -> list:
    (case.folder / "deploy").mkdir()
    (case.folder / "deploy" / "pipeline.py").write_text("# the user's own pipeline\n")
    return [case.config(), "--out", case.folder / "deploy"]


def _members(npz: Path) -> dict:
    import zipfile

    with zipfile.ZipFile(npz) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rewrite(npz: Path, **members) -> None:
    """The .npz with members replaced (bytes, or an array), added, or removed (None)."""
    import io
    import zipfile

    content = _members(npz)
    for name, value in members.items():
        if isinstance(value, np.ndarray):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value, allow_pickle=True)
            value = buffer.getvalue()
        content[f"{name}.npy"] = value
    with zipfile.ZipFile(npz, "w") as archive:
        for name, data in content.items():
            if data is not None:
                archive.writestr(name, data)


def _declaring(shape: tuple) -> bytes:
    """A .npy member whose header declares ``shape`` (uint8) and holds almost nothing: a few KB on disk."""
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_2_0(buffer, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(4096)


def _symlink_out(npz: Path) -> None:
    outside = npz.parents[2] / "outside.npz"
    shutil.copy(npz, outside)
    npz.unlink()
    os.symlink(outside, npz)


def _fifo(npz: Path) -> None:
    npz.unlink()
    os.mkfifo(npz)


def _encoding(npz: Path) -> list[str]:
    with np.load(npz) as data:
        return data["_encoding"].tolist()


def _model_input_stored(npz: Path, array: np.ndarray) -> None:
    """The model input (stage 7, which no other stage derives from) stored as ``array`` instead of derived."""
    _rewrite(npz, stage7=array, _encoding=np.array([e for e in _encoding(npz) if not e.startswith("stage7:")]))


def _palette_table_cut(npz: Path) -> None:
    """The model input stored as a palette whose table is shorter than its index says."""
    encoding = [e for e in _encoding(npz) if not e.startswith("stage7:")] + ["stage7:palette:"]
    _rewrite(npz, **{"stage7.index": np.full((3, 4, 4), 5, np.uint8), "stage7.table": np.zeros((3, 1), np.float32)},
             _encoding=np.array(encoding))


def _internal_error(case: Case, monkeypatch) -> list:
    from parity.run.harness import Harness

    def broken(self, *args, **kwargs):
        raise ZeroDivisionError("a bug in parity")

    monkeypatch.setattr(Harness, "compare", broken)
    return [case.config()]


CATALOGUE = [
    # ---- config ------------------------------------------------------------------------------------------------
    Fault("config-missing", "config", "the config file does not exist", "exit 2 naming the path",
          lambda c: [str(c.folder / "nope.py")], 2, "parity config not found:"),
    Fault("config-syntax", "config", "a syntax error in the config", "exit 2 with the line",
          lambda c: [c.config("reference = dict(\n")], 2, "cannot be read as a parity config: SyntaxError"),
    Fault("config-exits", "config", "the config calls sys.exit(0)", "exit 2, never a silent exit 0",
          lambda c: [c.config("import sys\nsys.exit(0)\n")], 2, "cannot be read as a parity config: SystemExit"),
    Fault("config-unknown-key", "config", "an unknown top-level key", "exit 2 listing the keys",
          lambda c: [c.config("colour = 1\n")], 2, "unknown key 'colour'"),
    Fault("config-key-typo", "config", "a typo in a section key", "exit 2 with a did-you-mean",
          lambda c: [c.config(dali=f"dict(pipeline={PIPELINE!r}, input_nme='INPUT_PREPROCESS')")], 2,
          "unknown key dali.'input_nme' (did you mean 'input_name'?)"),
    Fault("config-missing-images", "config", "a required section is missing", "exit 2 naming it",
          lambda c: [c.config(images=None)], 2, "missing key 'images'"),
    Fault("config-section-type", "config", "a section is not a dict", "exit 2 naming the keys it takes",
          lambda c: [c.config(dali="'pipe.py:f'")], 2, "dali='pipe.py:f': expected dict(...)"),
    Fault("config-enum", "config", "a value outside its choices", "exit 2 listing the choices",
          lambda c: [c.config(dali=f"dict(pipeline={PIPELINE!r}, input_format='YUV')")], 2,
          "dali.input_format='YUV': expected one of ['BGR', 'RGB', 'encoded']"),
    Fault("config-batch-size", "config", "dali.batch_size=0", "exit 2",
          lambda c: [c.config(dali=f"dict(pipeline={PIPELINE!r}, batch_size=0)")], 2,
          "dali.batch_size=0: expected a positive integer"),
    Fault("config-two-pipelines", "config", "both dali.pipeline and dali.serialized", "exit 2",
          lambda c: [c.config(dali=f"dict(pipeline={PIPELINE!r}, serialized='model.dali')")], 2,
          "give exactly one of pipeline="),
    Fault("config-negative-tolerance", "config", "a negative tolerance", "exit 2",
          lambda c: [c.config("tolerances = dict(crop=dict(atol=-1))\n")], 2,
          "tolerances.crop.atol=-1: expected a non-negative number"),
    Fault("config-tolerance-key", "config", "an unknown tolerance key", "exit 2 listing the keys",
          lambda c: [c.config("tolerances = dict(crop=dict(tol=1))\n")], 2, "unknown key tolerances.crop.'tol'"),
    Fault("config-tolerance-nan", "config", "a NaN tolerance in the config (tolerances.pixels.atol=nan)",
          "exit 2 naming the key; a pipeline 8 levels off passed with it (a silent pass)",
          lambda c: [c.config("tolerances = dict(pixels=dict(atol=float('nan')))\n")], 2,
          "tolerances.pixels.atol=nan: expected a non-negative number (inf: no limit)"),
    Fault("flag-atol-nan", "config", "--atol nan on the command line (and --rtol, --max-mismatch)",
          "exit 2 naming the flag; it passed a failing pipeline (a silent pass)",
          lambda c: [c.config(), "--atol", "nan"], 2, "--atol 'nan': expected a non-negative number (inf: no limit)"),
    Fault("config-tolerance-stage-typo", "config", "a tolerance for a stage that does not exist (typo)",
          "exit 2 with a did-you-mean; it used to be ignored (a silent pass)",
          lambda c: [c.config("tolerances = dict(model_inptu=dict(atol=9))\n")], 2,
          "tolerances.model_inptu: no stage of this pipeline is called 'model_inptu' (did you mean 'model_input'?)"),
    Fault("config-reference-missing", "config", "reference.config names a missing file", "exit 2 with the path",
          lambda c: [c.config(reference="dict(config='missing.py')")], 2, "reference.config='missing.py': file not found"),
    Fault("config-package-missing", "config", "a package config that does not exist", "exit 2 with the path",
          lambda c: [c.config(reference="dict(config='mmpretrain::nope/nope.py')")], 2,
          "reference.config='mmpretrain::nope/nope.py': file not found"),
    Fault("config-no-reference", "config", "a reference section with nothing in it", "exit 2 saying what to give",
          lambda c: [c.config(reference="dict()")], 2, "reference: give config="),
    Fault("config-pipeline-start", "config", "a test_pipeline override not starting with LoadImageFromFile",
          "exit 2 naming the override in the parity config",
          lambda c: [c.config(reference="dict(test_pipeline=[dict(type='PackInputs')])")], 2,
          "parity_cfg.py (reference.test_pipeline): test_pipeline must start with LoadImageFromFile"),
    Fault("config-pipeline-unknown-transform", "config", "an unknown transform in a test_pipeline override",
          "exit 2 blaming the parity config's override, not the base model config",
          lambda c: [c.config(reference=f"dict(config={str(SEED / 'hrnet_w30_512x384.py')!r}, test_pipeline=["
                                        "dict(type='LoadImageFromFile'), dict(type='NoSuchResize'), dict(type='PackInputs')])")],
          2, "parity_cfg.py (reference.test_pipeline over "),
    Fault("config-preprocessor", "config", "a data_preprocessor that cannot be built", "exit 2 naming it",
          lambda c: [c.config(reference=f"dict(config={str(SEED / 'hrnet_w30_512x384.py')!r}, "
                                        "data_preprocessor=dict(mean=[1, 2]))")], 2, "data_preprocessor="),
    Fault("config-base-missing", "config", "a _base_ file that does not exist", "exit 2 naming both files",
          lambda c: [c.config("_base_ = ['gone.py']\n")], 2, "_base_ file not found:"),
    Fault("config-base-cycle", "config", "a _base_ that includes itself", "exit 2 with the chain",
          lambda c: [c.config("_base_ = ['parity_cfg.py']\n")], 2, "includes itself"),
    Fault("config-model-no-onnx", "config", "a model section without the deployed model", "exit 2",
          lambda c: [c.config(model="dict(config='mmpretrain::resnet/resnet18_8xb32_in1k.py')")], 2,
          "model: give onnx='model.onnx'"),
    Fault("config-triton-no-model", "config", "a triton section without a model section", "exit 2",
          lambda c: [c.config(triton=f"dict(repository={str(REPOS / 'corrected_repository')!r})")], 2,
          "triton: the triton stage compares answers with the reference network"),
    Fault("config-triton-missing-repo", "config", "triton.repository does not exist", "exit 2 with the path",
          lambda c: [c.config(model=MODEL_SECTION, triton="dict(repository='nowhere')")], 2,
          "triton.repository='nowhere': folder not found"),
    Fault("config-triton-two-modes", "config", "both triton.repository and triton.url", "exit 2",
          lambda c: [c.config(model=MODEL_SECTION, triton="dict(repository='r', url='127.0.0.1:1')")], 2,
          "triton: give exactly one of repository="),
    # ---- pipeline code -------------------------------------------------------------------------------------------
    Fault("pipeline-file-missing", "pipeline", "dali.pipeline names a missing file", "exit 2 with the path",
          lambda c: [c.config(dali="dict(pipeline='gone.py:f')")], 2, "dali.pipeline='gone.py:f': file not found"),
    Fault("pipeline-spec", "pipeline", "dali.pipeline without ':function'", "exit 2 with the expected form",
          lambda c: [c.config(dali="dict(pipeline='pipe.py')")], 2, "expected 'path/to/file.py:function'"),
    Fault("pipeline-function-missing", "pipeline", "the function does not exist", "exit 2 naming it",
          lambda c: [c.config(dali=f"dict(pipeline={str(SEED / 'corrected_pipeline.py')!r} + ':nope')")], 2,
          "has no function 'nope'"),
    Fault("pipeline-not-decorated", "pipeline", "the function is not a @pipeline_def", "exit 2 saying so",
          lambda c: [(c.folder / "plain.py").write_text("def f():\n    pass\n") and c.config(dali="dict(pipeline='plain.py:f')")],
          2, "is not a @pipeline_def function"),
    Fault("pipeline-import-error", "pipeline", "the module raises at import", "exit 2 with the exception",
          lambda c: _dali(c, "return x", header="import no_such_module\n"), 2,
          "importing " ),
    Fault("pipeline-sys-exit", "pipeline", "the module calls sys.exit(0) at import",
          "exit 2; it used to end the check with exit 0 and no output (a silent pass)",
          lambda c: _dali(c, "return x", header="import sys\nsys.exit(0)\n"), 2, "called sys.exit(0)"),
    Fault("pipeline-argparse", "pipeline", "the module runs argparse at import", "exit 2, not argparse's usage",
          lambda c: _dali(c, "return x", header="import argparse\nargparse.ArgumentParser().add_argument('--in', "
                                                 "required=True)\nargparse.ArgumentParser().parse_args(['--x'])\n"), 2,
          "called sys.exit(2) (argparse"),
    Fault("pipeline-bad-argument", "pipeline", "an unknown DALI operator argument", "exit 2 with DALI's reason",
          lambda c: _dali(c, "return fn.resize(x, size=(10, 10), no_such_arg=1)"), 2,
          "defining the pipeline failed"),
    Fault("pipeline-input-name", "pipeline", "dali.input_name is not an external source", "exit 2 listing them",
          lambda c: [c.config(dali=f"dict(pipeline={PIPELINE!r}, input_name='IMAGES')")], 2,
          "dali.input_name='IMAGES' is not an external_source of the pipeline; its external sources are "
          "['INPUT_PREPROCESS']"),
    Fault("pipeline-two-inputs", "pipeline", "a pipeline with two external sources", "exit 2",
          lambda c: _dali(c, "y = fn.external_source(name='OTHER')\nreturn fn.cat(x, y)"), 2, "several external sources"),
    Fault("pipeline-gpu-only", "pipeline", "a GPU-only operator on a machine without a GPU", "exit 2 naming "
          "the operator and its line", lambda c: _dali(c, "return fn.experimental.median_blur(x.gpu())"), 2,
          "operators that DALI implements only on the GPU"),
    Fault("pipeline-run-fails-one-image", "pipeline", "DALI fails on one image only (a crop without padding)",
          "that image's error with DALI's reason and the user's line; the other images are judged; exit 2",
          lambda c: _dali(c, "return fn.crop(x, crop=(400, 400))"), 2,
          "Slice can't be placed out of bounds"),
    # ---- serialized pipelines ------------------------------------------------------------------------------------
    Fault("serialized-missing", "serialized", "dali.serialized names a missing file", "exit 2 with the path",
          lambda c: [c.config(dali="dict(serialized='gone.dali')")], 2, "dali.serialized='gone.dali': file not found"),
    Fault("serialized-garbage", "serialized", "a model.dali that is not a pipeline", "exit 2 naming the file",
          lambda c: _serialized(c, b"\x00garbage"), 2, "model.dali: not a serialized DALI pipeline"),
    Fault("serialized-empty", "serialized", "an empty model.dali", "exit 2 naming the file",
          lambda c: _serialized(c, b""), 2, "model.dali: not a complete serialized DALI pipeline (empty or truncated"),
    Fault("serialized-truncated", "serialized", "a model.dali truncated at an operator boundary",
          "exit 2 naming the file", lambda c: _serialized(c, _truncated_dali()), 2,
          "model.dali: not a complete serialized DALI pipeline"),
    Fault("serialized-gpu", "serialized", "a model.dali serialized for the GPU (device_id 0)",
          "rewritten to the CPU and judged", lambda c: _serialized(c, _seed_dali()), 0, "2 of 2 images match"),
    # ---- images --------------------------------------------------------------------------------------------------
    Fault("reference-std-zero", "config", "a data_preprocessor with std 0 for one channel",
          "exit 2 naming the std: the model input would be inf, compared as 'not explained'",
          lambda c: [c.config(reference=f"dict(config={str(SEED / 'hrnet_w30_512x384.py')!r}, data_preprocessor="
                                        "dict(mean=[0, 0, 0], std=[0, 1, 1], to_rgb=True))")], 2,
          "std=[0.0, 1.0, 1.0]: a std of 0 (or NaN) divides by zero"),
    Fault("image-missing", "images", "an image file that does not exist", "exit 2 with the path",
          lambda c: [c.config(images="['images/gone.png']")], 2, "images: 'images/gone.png' not found"),
    Fault("image-corrupt", "images", "a corrupt image file", "exit 2 naming it",
          lambda c: [(c.folder / "images" / "bad.jpg").write_bytes(b"\xff\xd8 nope") and c.config()], 2,
          "bad.jpg: not a readable image"),
    Fault("image-grayscale", "images", "a grayscale image", "exit 2 with its mode and the fix",
          lambda c: [c.image("gray.png", np.zeros((32, 32)), "L") and c.config()], 2,
          "unsupported image mode 'L' (grayscale)"),
    Fault("image-rgba", "images", "an image with alpha", "exit 2 with its mode",
          lambda c: [c.image("alpha.png", np.zeros((32, 32, 4)), "RGBA") and c.config()], 2,
          "unsupported image mode 'RGBA'"),
    Fault("image-16bit", "images", "a 16-bit image", "exit 2 with its mode",
          lambda c: [c.image("deep.png", np.zeros((32, 32), np.uint16), None) and c.config()], 2, "(16-bit)"),
    Fault("image-bomb", "images", "a 1 KB PNG declaring 20000x20000 pixels (it ran out of memory at 19 GB)",
          "exit 2 naming it, from its header, before anything decodes it (the first-batch checks included); the "
          "other images are judged",
          lambda c: [_bomb(c.folder / "images" / "bomb.png", 20000, 20000) and c.config()], 2,
          "bomb.png: refused before decoding (Image size (400000000 pixels) exceeds limit"),
    Fault("image-over-limit", "images", "an image over the pixel limit (PARITY_MAX_PIXELS=100000, 512x512)",
          "exit 2 with its size and the limit", lambda c: [_over_limit(c)], 2,
          "astronaut.png: 512x512 is 0.262 megapixels, over parity's limit of 0.1 (PARITY_MAX_PIXELS raises it)"),
    Fault("image-glob-empty", "images", "a glob that matches nothing", "exit 2",
          lambda c: [c.config(images="['images/*.jpg']")], 2, "'images/*.jpg' matches no image file"),
    Fault("image-folder-empty", "images", "a folder with no image", "exit 2",
          lambda c: [(c.folder / "empty").mkdir() or c.config(images="['empty']")], 2,
          "folder 'empty' holds no image file"),
    Fault("image-same-stem", "images", "same.png and same.jpg in one folder",
          "both judged under distinct ids; one used to overwrite the other (a silent pass)", _same_stem, 0,
          "PASSED | same.png"),
    Fault("image-jfif", "images", "a .jfif photo in an images folder", "listed by content and judged; it used "
          "to be skipped (a silent pass)", lambda c: _file_in_folder(c, "photo.jfif", "JPEG"), 0, "3 of 3 images match"),
    Fault("image-no-suffix", "images", "an extensionless JPEG in an images folder", "listed by content and "
          "judged", lambda c: _file_in_folder(c, "photo", "JPEG"), 0, "3 of 3 images match"),
    Fault("image-symlink-loop", "images", "a symlink loop among the images", "exit 2 naming it",
          lambda c: _symlink(c, "loop.png", "images/loop.png"), 2, "loop.png cannot be read"),
    Fault("image-broken-symlink", "images", "a symlink to a missing file", "exit 2 naming it",
          lambda c: _symlink(c, "broken.png", "nowhere.png"), 2, "broken.png cannot be read"),
    Fault("image-extreme", "images", "a valid 1x5000 image MMCV cannot resize (width 0)",
          "that image's error; the others are still judged; exit 2",
          lambda c: [c.image("thin.png", np.full((5000, 1, 3), 80)) and c.config()], 2,
          "2 of 3 images match, 1 could not be checked"),
    # ---- models --------------------------------------------------------------------------------------------------
    Fault("model-onnx-missing", "models", "model.onnx does not exist", "exit 2 with the path",
          lambda c: [c.config(model=MODEL_SECTION.replace("known_answer.onnx", "gone.onnx"))], 2,
          "model.onnx: file not found"),
    Fault("model-onnx-garbage", "models", "model.onnx is not an ONNX file", "exit 2 naming it",
          lambda c: [(c.folder / "bad.onnx").write_bytes(b"garbage") and c.config(
              model=MODEL_SECTION.replace(str(MODEL / "known_answer.onnx"), str(c.folder / "bad.onnx")))], 2,
          "ONNX Runtime cannot load it"),
    Fault("model-onnx-input-shape", "models", "an ONNX exported at another input size", "exit 2 naming both shapes",
          lambda c: _onnx_with(c, size=(224, 224)), 2, "model.onnx: takes input of shape"),
    Fault("model-onnx-classes", "models", "an ONNX with another class count", "exit 2 naming both counts",
          lambda c: _onnx_with(c, classes=10), 2, "model.onnx: answers 10 classes, the reference network 1000"),
    Fault("model-checkpoint-garbage", "models", "a checkpoint that is not a torch file",
          "exit 2, without torch's weights_only advice",
          lambda c: [(c.folder / "bad.pth").write_bytes(b"garbage") and c.config(
              model=MODEL_SECTION.replace(str(MODEL / "known_answer.pth"), str(c.folder / "bad.pth")))], 2,
          "model.checkpoint does not load into the model: not a torch checkpoint file"),
    Fault("model-tensorrt-no-gpu", "models", "model.backend='tensorrt' without a GPU", "exit 2 saying what it needs",
          lambda c: [c.config(model=MODEL_SECTION[:-1] + ", backend='tensorrt')")], 2,
          "TensorRT backend unavailable"),
    # ---- Triton --------------------------------------------------------------------------------------------------
    Fault("triton-no-config", "triton", "a model folder without config.pbtxt", "exit 2 naming the folder",
          lambda c: _triton_broken(c, lambda r: (r / "extra").mkdir()), 2, "model folder without config.pbtxt"),
    Fault("triton-bad-config", "triton", "an invalid config.pbtxt", "exit 2 naming the file",
          lambda c: _triton_broken(c, lambda r: (r / "classifier" / "config.pbtxt").write_text("name: \"x\" inp {")), 2,
          "classifier/config.pbtxt: not a valid Triton model config"),
    Fault("triton-model-fails-to-load", "triton", "a repository model the server cannot load",
          "exit 2 quoting the server's error lines; no process or temporary folder left",
          lambda c: _triton_broken(c, lambda r: (r / "preprocess" / "1" / "model.dali").write_bytes(b"\x00")), 2,
          "tritonserver exited with code"),
    Fault("triton-no-onnx", "triton", "a tensorrt_plan model without the ONNX it was built from",
          "exit 2 saying where to put it", lambda c: _triton_broken(
              c, lambda r: (r / "classifier" / "1" / "model.onnx").unlink()), 2, "needs the ONNX it was built from"),
    Fault("triton-unreachable", "triton", "triton.url where no server listens", "exit 2 within the timeout",
          lambda c: [c.config(model=MODEL_SECTION, triton="dict(url='127.0.0.1:9', timeout_s=3)")], 2,
          "cannot be reached"),
    # ---- snapshots are untrusted: every malformed family of manifest and .npz is exit 2 naming the field, never 3
    Fault("snapshot-manifest-field-missing", "snapshots", "a manifest without its stages",
          "exit 2 naming the field (it used to be a KeyError: exit 3)",
          lambda c: c.snapshot(lambda m: m.pop("stages")), 2, "manifest.json: stages: missing"),
    Fault("snapshot-manifest-field-type", "snapshots", "a manifest field of the wrong type (mean as a string)",
          "exit 2 naming the field", lambda c: c.snapshot(lambda m: m["preprocessor"].update(mean="123")), 2,
          "manifest.json: preprocessor.mean: expected a list or null, found '123'"),
    Fault("snapshot-manifest-mean", "snapshots", "a normalizing preprocessor with two means for three channels",
          "exit 2 naming the field (a diagnosis that reads the means would have broken on it)",
          lambda c: c.snapshot(lambda m: m["preprocessor"].update(mean=[1.0, 2.0])), 2,
          "manifest.json: preprocessor.mean: expected 3 numbers, one per channel"),
    Fault("snapshot-manifest-layout", "snapshots", "a stage layout that is none", "exit 2 naming the field",
          lambda c: c.snapshot(lambda m: m["stages"][0].update(layout="WHC")), 2,
          "stages[0].layout: expected one of ['CHW', 'HWC'], found 'WHC'"),
    Fault("snapshot-fewer-stages", "snapshots", "a manifest listing fewer stages than its pipeline gives",
          "exit 2: the snapshot does not match its pipeline; it used to be diagnosed as channels in reverse order",
          lambda c: c.snapshot(lambda m: m.update(stages=[s for s in m["stages"] if s["name"] != "to_rgb"])), 2,
          "the snapshot does not match its pipeline"),
    Fault("snapshot-file-absolute", "snapshots", "an image entry whose file is an absolute path",
          "exit 2 naming the entry; nothing outside the snapshot is read",
          lambda c: c.snapshot(lambda m: m["images"][0].update(file="/etc/passwd")), 2,
          "images[0].file: '/etc/passwd' is not a path inside the snapshot folder"),
    Fault("snapshot-file-dotdot", "snapshots", "an image entry whose file climbs out with ..", "exit 2 naming the entry",
          lambda c: c.snapshot(lambda m: m["images"][0].update(file="../../secret.npz")), 2,
          "images[0].file: '../../secret.npz' is not a path inside the snapshot folder"),
    Fault("snapshot-file-symlink-out", "snapshots", "an image file that is a symlink leaving the snapshot folder",
          "exit 2 naming it; the file outside used to be read and passed (a silent pass)",
          lambda c: c.snapshot(file=_symlink_out), 2, "leaves the snapshot folder"),
    Fault("snapshot-file-fifo", "snapshots", "an image file that is a FIFO", "exit 2 without opening it (reading "
          "would block for ever)", lambda c: c.snapshot(file=_fifo), 2, ".npz: not a regular file"),
    Fault("snapshot-npz-huge-stage", "snapshots", "a small .npz declaring a 3 GB stage",
          "exit 2 before reading it (it used to run for 300 s at 3.1 GB)",
          lambda c: c.snapshot(file=lambda f: _rewrite(f, stage0=_declaring((40000, 25000, 3)))), 2,
          "stage0.npy: declares a uint8 array of shape (40000, 25000, 3) (3000000000 bytes), over the limit"),
    Fault("snapshot-npz-huge-total", "snapshots", "a .npz whose stages declare 2.9 GB in all, each under the limit",
          "exit 2 before reading it", lambda c: c.snapshot(file=lambda f: _rewrite(f, **{
              f"stage{i}": _declaring((20000, 16000, 3)) for i in range(3)})), 2, "bytes per image"),
    Fault("snapshot-npz-stage-missing", "snapshots", "a .npz without one of its stages", "exit 2 naming the stage",
          lambda c: c.snapshot(file=lambda f: _rewrite(f, _encoding=np.array(
              [e for e in _encoding(f) if not e.startswith("stage1:")]))), 2, "stage1: missing, though _encoding names it"),
    Fault("snapshot-npz-stage-extra", "snapshots", "a .npz with more stages than the manifest lists",
          "exit 2: the manifest does not match its files; it used to pass on the stages listed (a silent pass)",
          lambda c: c.snapshot(file=lambda f: _rewrite(f, stage8=np.zeros((4, 4, 3), np.uint8))), 2,
          "holds more stages than the manifest's 8"),
    Fault("snapshot-npz-stage-shape", "snapshots", "a stage that is not a 3-channel image", "exit 2 naming the stage",
          lambda c: c.snapshot(file=lambda f: _model_input_stored(f, np.zeros(10, np.float32))), 2,
          "stage7 (model_input): a float32 array of shape (10,)"),
    Fault("snapshot-npz-pickle", "snapshots", "a stage stored as a pickled object array", "exit 2; never unpickled",
          lambda c: c.snapshot(file=lambda f: _rewrite(f, stage0=np.array([{}], dtype=object))), 2,
          "truncated or corrupt snapshot file (ValueError"),
    Fault("snapshot-npz-encoding", "snapshots", "a .npz whose encoding list is not one parity writes",
          "exit 2 naming the entry", lambda c: c.snapshot(file=lambda f: _rewrite(f, _encoding=np.array(["x:zip:"]))),
          2, "_encoding: 'x:zip:' is not NAME:same|from|decoded|zlib|palette"),
    Fault("snapshot-npz-palette", "snapshots", "a palette-encoded stage whose table is cut short",
          "exit 2 naming the file (it used to be an IndexError: exit 3)",
          lambda c: c.snapshot(file=_palette_table_cut), 2, "truncated or corrupt snapshot file (IndexError"),
    # ---- output files and folders ----------------------------------------------------------------------------------
    Fault("output-junit-under-file", "outputs", "--junit-xml under a path that is a file",
          "exit 2 before any work; a passing run used to exit 1 at its last step",
          lambda c: [c.config(), "--junit-xml", str(c.folder / "images" / "astronaut.png" / "x.xml")], 2,
          "astronaut.png is a file, not a folder"),
    Fault("output-json-is-folder", "outputs", "--json naming a folder", "exit 2 before any work",
          lambda c: [c.config(), "--json", str(c.folder / "images")], 2, "is a folder; give a file name"),
    Fault("output-report-foreign", "outputs", "--report naming a folder of other files", "exit 2; nothing in it "
          "is touched", lambda c: [c.config(), "--report", str(c.folder / "images")], 2,
          "exists and is not a parity output folder"),
    Fault("output-report-is-file", "outputs", "--report naming a file", "exit 2",
          lambda c: [c.config(), "--report", str(c.folder / "images" / "astronaut.png")], 2,
          "exists and is not a parity output folder"),
    Fault("output-report-stale", "outputs", "--report over an earlier report", "replaced whole: no stale pictures",
          _report_twice, 0, "HTML report:"),
    Fault("output-junit-planted-symlink", "outputs", "symlinks planted at the JUnit spool's old fixed name and at "
          "--junit-xml itself", "written through a new file of an unpredictable name, renamed into place: the "
          "symlinks' target is untouched (it used to be overwritten)", _junit_spool_planted, 0, "2 of 2 images match"),
    Fault("output-json-is-config", "outputs", "--json naming the config file", "exit 2 before any work; the "
          "config is not overwritten (the result file used to replace it)",
          lambda c: [c.config(), "--json", c.folder / "parity_cfg.py"], 2, "--json "),
    Fault("output-junit-is-image", "outputs", "--junit-xml naming one of the images", "exit 2 before any work; "
          "the image is not overwritten", lambda c: [c.config(), "--junit-xml", c.folder / "images" / "chelsea.png"],
          2, "chelsea.png: is an input of this run"),
    Fault("output-json-is-junit", "outputs", "--json and --junit-xml naming the same file",
          "exit 2 before any work", lambda c: [c.config(), "--json", c.folder / "r.xml", "--junit-xml",
                                               c.folder / "r.xml"], 2, "is also --json; name two files"),
    Fault("output-suggest-foreign", "outputs", "`parity suggest --out` onto a folder holding the user's own "
          "pipeline.py", "exit 2 before any work; nothing in it is touched (it used to be overwritten)",
          _users_own_pipeline, 2, "exists and is not a parity output folder", "suggest"),
    Fault("output-on-usage-error", "outputs", "a usage error with --junit-xml and --json",
          "both files are written, with one error case naming it",
          lambda c: [str(c.folder / "nope.py"), "--junit-xml", str(c.folder / "r.xml"), "--json",
                     str(c.folder / "r.json")], 2, "parity config not found"),
    # ---- parity merge: the shards' result files are inputs, not trusted ------------------------------------------
    Fault("merge-exit-code-lies", "merge", "a shard whose image failed but whose exit_code says 0",
          "exit 2 naming the file and field: verdicts are recomputed from the records; it used to merge to exit 0 "
          "(a silent pass)", lambda c: c.shards(_failed_exit_0), 2, "exit_code: 0 contradicts its records, which "
          "say 1", "merge"),
    Fault("merge-record-lies", "merge", "an image record marked passed whose stage failed",
          "exit 2 naming the record's field", lambda c: c.shards(_failed_marked_passed), 2,
          "images[0].passed: true contradicts the record", "merge"),
    Fault("merge-other-config", "merge", "shards of two configs that share a file name",
          "exit 2 naming run.config_sha256; they used to be merged (a silent pass)",
          lambda c: [c.shards()[0], c.shard_run / "other" / "s2.json"], 2,
          "run.config_sha256: another config (its content differs)", "merge"),
    Fault("merge-other-version", "merge", "shards written by two parity versions", "exit 2 naming the field",
          lambda c: c.shards(lambda a, b: b.update(parity="0.0.1")), 2, "s2.json: parity: another parity version",
          "merge"),
    Fault("merge-image-missing", "merge", "a shard's result file without one of its images (cut short, edited)",
          "exit 2: the shards must hold every image of the config (run.images); it used to pass on the rest "
          "(a silent pass)", lambda c: c.shards(lambda a, b: _holding(a, b)["images"].pop()), 2,
          "run.images: the config has 2 images, the shards hold 1", "merge"),
    Fault("merge-overlap", "merge", "an image in two shards", "exit 2 naming both files",
          lambda c: c.shards(_overlap), 2, "shards overlap", "merge"),
    Fault("merge-malformed", "merge", "a record with a malformed field (a stage status that is none)",
          "exit 2 naming the field, not a parity bug (exit 3)", lambda c: c.shards(
              lambda a, b: _holding(a, b)["images"][0]["stages"][0].update(status="fine")), 2,
          "images[0].stages[0].status: expected one of ['failed', 'passed', 'skipped']", "merge"),
    Fault("merge-unfinished", "merge", "a shard whose run ended in an error", "exit 2: run that shard again",
          lambda c: c.shards(lambda a, b: a.update(error="parity: KeyboardInterrupt", exit_code=130,
                                                   verdict="error")), 2, "error: its run did not finish", "merge"),
    Fault("merge-report-elsewhere", "merge", "a shard naming a report folder elsewhere (a private key's folder)",
          "exit 2; nothing copied: only report folders beside their result file, with parity's marker",
          _report_elsewhere, 2, "is not a folder beside the result file", "merge"),
    Fault("merge-report-symlink", "merge", "a symlink in a shard's report (to a private key)",
          "exit 2; never followed, nothing copied", _report_with_symlink, 2,
          "a symlink or special file in a shard's report", "merge"),
    Fault("merge-report-not-parity", "merge", "a shard naming a folder beside it that parity did not write",
          "exit 2; nothing copied: no parity-report.txt in it", lambda c: [*c.shards(lambda a, b: a.update(
              report="images")), "--report", c.folder / "merged"], 2, "holds no parity-report.txt", "merge"),
    Fault("merge-output-is-input", "merge", "--json naming one of the result files merged",
          "exit 2 before any work; the shard is not overwritten", lambda c: [*c.shards(), "--json", c.folder / "s1.json"],
          2, "is an input of this run", "merge"),
    Fault("internal-error", "parity", "a bug in parity itself", "exit 3 with one line; --debug shows the traceback",
          None, 3, "parity: internal error (a bug in parity, please report it): ZeroDivisionError: a bug in parity"),
]


def _check_extras(fault: Fault, case: Case, out: str) -> None:
    """What a row proves beyond its exit code and sentence."""
    folder = case.folder
    if fault.id == "image-same-stem":
        names = Path(folder / "out.xml").read_text()
        assert '.same.png" name="input"' in names and '.same.jpg" name="input"' in names
    if fault.id in ("image-jfif", "image-no-suffix"):
        ids = [image["id"] for image in json.loads((folder / "r.json").read_text())["images"]]
        assert len(ids) == 3 and any(i.startswith("photo") for i in ids)
    if fault.id == "image-extreme":
        assert "ERROR | thin | " in out
    if fault.id == "pipeline-run-fails-one-image":
        assert "(image " in out and "pipe.py:" in out
    if fault.id == "output-report-stale":
        assert not (folder / "report" / "stale.png").exists() and (folder / "report" / "index.html").is_file()
        assert not [p for p in folder.iterdir() if p.name.startswith(".report")]
    if fault.id == "output-report-foreign":
        assert sorted(p.name for p in (folder / "images").iterdir()) == ["astronaut.png", "chelsea.png"]
    if fault.id.startswith("merge-report"):
        assert not (folder / "merged").exists()
        copies = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]
        assert not [p for p in copies if "PRIVATE KEY" in p.read_text(errors="replace")]
    if fault.id == "output-json-is-junit":
        assert not (folder / "r.xml").exists()
    if fault.id == "output-junit-planted-symlink":
        assert (folder / "victim.txt").read_text() == "not parity's\n" and not (folder / "out.xml").is_symlink()
        assert "<testsuite" in (folder / "out.xml").read_text()
        assert sorted(p.name for p in folder.glob(".out.xml*")) == [".out.xml.cases"]  # only the planted link
    if fault.id == "output-json-is-config":
        assert (folder / "parity_cfg.py").read_text().startswith("reference = ")
        assert "is an input of this run" in out
    if fault.id == "output-junit-is-image":
        assert Image.open(folder / "images" / "chelsea.png").format == "PNG"
    if fault.id == "output-suggest-foreign":
        assert [p.name for p in (folder / "deploy").iterdir()] == ["pipeline.py"]
        assert (folder / "deploy" / "pipeline.py").read_text() == "# the user's own pipeline\n"
    if fault.id == "merge-output-is-input":
        assert json.loads((folder / "s1.json").read_text())["shard"] == "1/2"
    if fault.id == "output-on-usage-error":
        assert "<error" in (folder / "r.xml").read_text() and '"verdict": "error"' in (folder / "r.json").read_text()


@pytest.fixture(scope="module")
def shard_run(tmp_path_factory) -> Path:
    """What the merge rows start from: a passing run of the Case's config in two shards, with reports, and
    shard 2/2 of another config of the same file name (other/s2.json)."""
    folder = tmp_path_factory.mktemp("shards")
    for name, extra in (("project", ""), ("other", "tolerances = dict(model_input=dict(atol=5))\n")):
        (folder / name).mkdir()
        config = Case(folder / name).config(extra)
        for k in (1, 2) if name == "project" else (2,):
            out = folder if name == "project" else folder / name
            assert main(["check", config, "--shard", f"{k}/2", "--json", str(out / f"s{k}.json"), "--report",
                         str(out / f"r{k}"), "-q"]) == 0
    return folder


@pytest.fixture(scope="module")
def snapshot_run(tmp_path_factory) -> Path:
    """What the snapshot rows start from: the Case config's reference recorded by `parity snapshot` (ref/)."""
    folder = tmp_path_factory.mktemp("snapshot")
    (folder / "project").mkdir()
    assert main(["snapshot", Case(folder / "project").config(), "--out", str(folder / "ref"), "-q"]) == 0
    return folder


@pytest.mark.parametrize("fault", CATALOGUE, ids=[f.id for f in CATALOGUE])
def test_fault(fault, tmp_path, capsys, monkeypatch, request):
    (tmp_path / "project").mkdir()
    case = Case(tmp_path / "project")
    if fault.command == "merge":
        case.shard_run = request.getfixturevalue("shard_run")
    if fault.area == "snapshots":
        case.snapshot_run = request.getfixturevalue("snapshot_run")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setenv("PARITY_MAX_PIXELS", "")  # the default limit, restored after a fault that sets one
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)
    args = _internal_error(case, monkeypatch) if fault.id == "internal-error" else fault.make(case)
    code = main([fault.command, *map(str, args)])
    out = "".join(capsys.readouterr())
    assert code == fault.code, out[-3000:]
    assert fault.said in out, out[-3000:]
    assert "Traceback" not in out
    assert not list((tmp_path / "tmp").glob("parity-*")), "a temporary folder was left behind"
    _check_extras(fault, case, out)


MALFORMED_RESULTS = {  # a shard's result file, damaged: (the edit of both documents, what the refusal says)
    "not-a-list": (lambda a, b: a.update(images={}), "s1.json: images: expected a list, found {}"),
    "record-not-object": (lambda a, b: _holding(a, b)["images"].__setitem__(0, 3), "images[0]: expected an object"),
    "stage-field-missing": (lambda a, b: _holding(a, b)["images"][0]["stages"][0].pop("statistics"),
                            "images[0].stages[0].statistics: missing"),
    "answer-incomplete": (lambda a, b: _holding(a, b)["images"][0].update(model={"status": "passed"}),
                          "images[0].model.backend: missing"),
    "shard-zero": (lambda a, b: a.update(shard="0/2"), "s1.json: shard: expected K/N with 1 <= K <= N"),
    "shard-beyond": (lambda a, b: a.update(shard="3/2"), "s1.json: shard: expected K/N with 1 <= K <= N"),
    "run-missing": (lambda a, b: b.pop("run"), "s2.json: run: missing"),
    "run-count-text": (lambda a, b: b["run"].update(images="2"), "s2.json: run.images: expected integer"),
    "check-not-object": (lambda a, b: a["checks"].update(gpu_risk="passed"), "s1.json: checks.gpu_risk: expected an object"),
    "share-text": (lambda a, b: a.update(degenerate={"status": "passed", "share": "0.9"}),
                   "s1.json: degenerate.share: expected a number or null"),
    "label-not-text": (lambda a, b: _holding(a, b)["images"][0].update(labels=[1]), "images[0].labels[0]: expected string"),
    "exit-code-text": (lambda a, b: a.update(exit_code="0"), "s1.json: exit_code: expected integer"),
    "old-schema": (lambda a, b: a.update(schema=1), "s1.json: result schema 1; this parity reads schema 2"),
    "not-json": (lambda a, b: a.clear(), "s1.json: not a parity result file"),
}


@pytest.mark.parametrize("family", MALFORMED_RESULTS)
def test_no_malformed_result_file_is_a_parity_bug(family, tmp_path, capsys, shard_run):
    """Every family of damage to a shard's result file is a usage error naming the file and field (exit 2),
    never an exception inside parity (exit 3)."""
    (tmp_path / "project").mkdir()
    case = Case(tmp_path / "project")
    case.shard_run = shard_run
    edit, said = MALFORMED_RESULTS[family]
    assert main(["merge", *map(str, case.shards(edit))]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and "Traceback" not in err


def test_two_runs_writing_one_junit_file_at_once_each_leave_a_whole_file(tmp_path):
    """Concurrent CI jobs sharing a --junit-xml path used to share its spool file and crash (exit 3)."""
    import threading
    import xml.etree.ElementTree as ET

    from parity.outputs.junit import Case as Row
    from parity.outputs.junit import write_junit

    target, failures = tmp_path / "shared.xml", []

    def job(status: str) -> None:
        try:
            write_junit(target, (Row("cfg.img", f"stage{i}", status) for i in range(20000)), seconds=1.0)
        except Exception as exc:  # noqa: BLE001 - what a run would have died of
            failures.append(exc)

    threads = [threading.Thread(target=job, args=(status,)) for status in ("passed", "failed")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    suite = ET.parse(target).getroot().find("testsuite")
    assert suite.get("tests") == "20000" and suite.get("failures") in ("0", "20000")
    assert [p.name for p in tmp_path.iterdir()] == ["shared.xml"]


def test_internal_error_traceback_only_with_debug(tmp_path, capsys, monkeypatch):
    case = Case(tmp_path)
    args = _internal_error(case, monkeypatch)
    assert main(["--debug", "check", *args]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_the_catalogue_document_lists_every_fault():
    """docs/reliability.md is generated from CATALOGUE (scripts/reliability_table.py): it cannot drift."""
    generated = subprocess.run([sys.executable, str(ROOT / "scripts" / "reliability_table.py")], capture_output=True,
                               text=True, check=True).stdout
    assert generated in (ROOT / "docs" / "reliability.md").read_text()
