"""The served pipeline is the tested pipeline: the Triton model repository, checked statically before any
request. Its DALI model is compared with the pipeline under test operator by operator, its classifier's ONNX
with model.onnx, and the ensemble's wiring (names, maps, dtypes, dims, layout) with every step's config.pbtxt.
Each finding names the file and line to change and the value to set."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from parity.dali.runner import DaliStage, rewrite
from parity.errors import ParityDaliError
from parity.reference.snapshot import file_sha256
from parity.results.protocol import CheckResult
from parity.serving.triton import _kind, read_repository

_NOT_COMPARED = {"bytes_per_sample_hint", "seed", "num_threads"}  # set per build, not part of the computation


@dataclass(frozen=True)
class RepositoryResult(CheckResult):
    """The ``triton_repository`` check item."""

    status: str  # passed | failed
    repository: Path
    problems: tuple = ()

    def message(self) -> str:
        if not self.problems:
            return f"The Triton repository {self.repository} serves the tested pipeline and model, wired consistently."
        return "\n".join([f"The Triton repository {self.repository} does not serve what was tested!", "",
                          *(f"- {p}" for p in self.problems)])


def _where(config_path: Path, needle: str) -> str:
    """``path:line`` of the first line of a config.pbtxt holding ``needle``."""
    for number, line in enumerate(config_path.read_text().splitlines(), 1):
        if needle in line:
            return f"{config_path}:{number}"
    return str(config_path)


def _value(name: str, value) -> str:
    """An argument as the user wrote it: 5.7375, not float32's 5.737500190734863; FLOAT, not dtype 9."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(name, v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.7g}"
    if name.endswith("dtype") and isinstance(value, int) and not isinstance(value, bool):
        from nvidia.dali import types

        try:
            return f"types.{types.DALIDataType(value).name}"
        except ValueError:
            return str(value)
    return repr(value)


def _call(stage: DaliStage) -> str:
    args = ", ".join(f"{k}={_value(k, v)}" for k, v in sorted(stage.args.items()) if k not in _NOT_COMPARED)
    return f"{stage.display}({args})"


def _argument_differences(served: DaliStage, tested: DaliStage, served_path: Path) -> list[str]:
    """Each argument of one operator that differs, element by element for lists, in the user's terms."""
    out, where = [], tested.where.split(": ", 1)[0]  # file:line, without the line's code
    for name in sorted((set(served.args) | set(tested.args)) - _NOT_COMPARED):
        ours, theirs = served.args.get(name), tested.args.get(name)
        if ours == theirs:
            continue
        if isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)) and len(ours) == len(theirs):
            out += [f"{name}[{i}]: {_value(name, a)} in {served_path.name}, {_value(name, b)} in {where}"
                    for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
        else:
            shown = [("(not set)" if v is None else _value(name, v)) for v in (ours, theirs)]
            out.append(f"{name}: {shown[0]} in {served_path.name}, {shown[1]} in {where}")
    return out


def _data_stages(stages: list[DaliStage]) -> list[DaliStage]:
    return [s for s in stages if s.op not in ("MakeContiguous",)]


def compare_pipelines(served: list[DaliStage], tested: list[DaliStage], served_path: Path) -> list[str]:
    """What the repository's model.dali does differently from the pipeline under test (device placement is
    not compared: Triton places operators itself)."""
    served, tested = _data_stages(served), _data_stages(tested)
    key = [(s.op, tuple(sorted((k, repr(v)) for k, v in s.args.items() if k not in _NOT_COMPARED))) for s in served]
    want = [(s.op, tuple(sorted((k, repr(v)) for k, v in s.args.items() if k not in _NOT_COMPARED))) for s in tested]
    problems = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=key, b=want, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1 and all(served[i].op == tested[j].op
                                                             for i, j in zip(range(i1, i2), range(j1, j2))):
            for i, j in zip(range(i1, i2), range(j1, j2)):
                differences = "; ".join(_argument_differences(served[i], tested[j], served_path))
                problems.append(f"{served_path} has {served[i].display} with other arguments than {tested[j].where}: "
                                f"{differences}; re-serialize the tested pipeline into it")
            continue
        for j in range(j1, j2):
            problems.append(f"{served_path} lacks {_call(tested[j])} that {tested[j].where} has: re-serialize the "
                            "tested pipeline into it")
        for i in range(i1, i2):
            problems.append(f"{served_path} has {_call(served[i])}, which the tested pipeline does not: re-serialize "
                            "the tested pipeline into it")
    return problems


def _layout(stages: list[DaliStage]) -> str:
    """The layout a DALI pipeline's output has: HWC images unless its last layout-setting operator says else."""
    for stage in reversed(stages):
        if stage.op == "CropMirrorNormalize":
            return str(stage.args.get("output_layout", "CHW"))
        if stage.op == "Transpose" and stage.args.get("perm") == [2, 0, 1]:
            return "CHW"
    return "HWC"


_DALI_TO_TRITON = {0: "TYPE_UINT8", 9: "TYPE_FP32", 8: "TYPE_FP16", 6: "TYPE_INT32", 7: "TYPE_INT64"}


def _dtype(stages: list[DaliStage]) -> str | None:
    """The Triton type of a DALI pipeline's output, where its last operator says it (None: not known)."""
    last = stages[-1] if stages else None
    if last is None:
        return None
    if last.op in ("CropMirrorNormalize", "Normalize"):
        return _DALI_TO_TRITON.get(int(last.args.get("dtype", 9)))
    if last.op == "Cast":
        return _DALI_TO_TRITON.get(int(last.args["dtype"]))
    return "TYPE_UINT8" if last.keeps_pixel_values else None


def _model_file(folder: Path, name: str) -> Path | None:
    versions = sorted((v for v in folder.iterdir() if v.is_dir() and v.name.isdigit()), key=lambda v: int(v.name))
    for version in reversed(versions):
        if (version / name).is_file():
            return version / name
    return None


def check_repository(repository: Path, *, tested: list[DaliStage], input_name: str | None,
                     onnx: Path | None) -> RepositoryResult:
    """The static checks, run once before the server starts."""
    from tritonclient.grpc import model_config_pb2

    dtype_names = {v: k for k, v in model_config_pb2.DataType.items()}
    models = read_repository(repository)
    problems: list[str] = []
    dali_models = {n: (f, c) for n, (f, c) in models.items() if _kind(c) == "dali"}
    served_layout = None
    for name, (folder, config) in dali_models.items():
        inputs = [i.name for i in config.input]
        if len(dali_models) > 1 and input_name not in inputs:
            continue  # another preprocessing model: not the one under test
        path = _model_file(folder, "model.dali")
        if path is None:
            problems.append(f"{folder}: a dali model without model.dali")
            continue
        try:
            served = rewrite(path.read_bytes(), to_cpu=False)[1]
        except ParityDaliError as exc:
            problems.append(f"{path}: {exc}: re-serialize the tested pipeline into it")
            continue
        problems += compare_pipelines(served, tested, path)
        emits = _dtype(served)
        for output in config.output[:1]:
            declared = dtype_names[output.data_type]
            if emits and declared != emits:
                problems.append(f"{_where(folder / 'config.pbtxt', output.name)}: output {output.name!r} of {name!r} "
                                f"is declared {declared}, but its model.dali emits {emits} (its last operator: "
                                f"{served[-1].where}): set data_type: {emits}")
        served_layout = (name, _layout(served), served[-1].where if served else str(path))
    if onnx is not None and onnx.is_file():
        digest = file_sha256(onnx)
        for folder, config in models.values():
            if _kind(config) in ("tensorrt_plan", "onnxruntime_onnx", "onnxruntime"):
                served_onnx = _model_file(folder, "model.onnx")
                if served_onnx is not None and file_sha256(served_onnx) != digest:
                    problems.append(f"{served_onnx} is not model.onnx {onnx} (another sha256): the repository serves "
                                    "another model than the one tested; copy the exported model into it")
    problems += _wiring(models, served_layout, dtype_names)
    return RepositoryResult("failed" if problems else "passed", repository, tuple(problems))


def _wiring(models: dict, served_layout, dtype_names: dict) -> list[str]:
    """Every ensemble step against the config.pbtxt of the model it runs."""
    problems = []
    for folder, ensemble in models.values():
        if _kind(ensemble) != "ensemble":
            continue
        path = folder / "config.pbtxt"
        tensors = {t.name: (t, ensemble, path) for t in ensemble.input}  # name -> (spec, its model's config, file)
        for step in ensemble.ensemble_scheduling.step:
            if step.model_name not in models:
                problems.append(f"{_where(path, step.model_name)}: step model {step.model_name!r} is not in the "
                                f"repository (models: {sorted(models)})")
                continue
            model_folder, model = models[step.model_name]
            model_path = model_folder / "config.pbtxt"
            inputs = {i.name: i for i in model.input}
            outputs = {o.name: o for o in model.output}
            problems += [_not_in(path, "input_map", key, step.model_name, inputs, model_path)
                         for key in step.input_map if key not in inputs]
            problems += [_not_in(path, "output_map", key, step.model_name, outputs, model_path)
                         for key in step.output_map if key not in outputs]
            for key, value in step.input_map.items():
                if key not in inputs:
                    continue
                if value not in tensors:
                    problems.append(f"{_where(path, value)}: input_map maps {key!r} to {value!r}, which no earlier step "
                                    f"produces and the ensemble does not take (known: {sorted(tensors)})")
                    continue
                problems += _match(tensors[value], (inputs[key], model, model_path), value, step.model_name,
                                   served_layout, dtype_names)
            for key, value in step.output_map.items():
                if key in outputs:
                    tensors[value] = (outputs[key], model, model_path)
        for out in ensemble.output:
            if out.name not in tensors:
                problems.append(f"{_where(path, out.name)}: ensemble output {out.name!r} is produced by no step")
    return problems


def _not_in(path: Path, field: str, key: str, model: str, names: dict, model_path: Path) -> str:
    kind = "an input" if field == "input_map" else "an output"
    return (f"{_where(path, key)}: {field} key {key!r} is not {kind} of {model!r} (its {kind.split()[1]}s: "
            f"{sorted(names)}, {model_path})")


def _match(produced, consumed, tensor: str, consumer: str, served_layout, dtype_names: dict) -> list[str]:
    """One tensor as its producer declares it and as its consumer declares it."""
    (out, out_model, out_path), (inp, in_model, in_path) = produced, consumed
    problems = []
    if out.data_type != inp.data_type:
        want, got = dtype_names[out.data_type], dtype_names[inp.data_type]
        problems.append(f"{_where(in_path, inp.name)}: input {inp.name!r} of {consumer!r} is declared {got}, but "
                        f"{tensor!r} arrives as {want} ({_where(out_path, out.name)}): set data_type: {want}")
    batched_out, batched_in = out_model.max_batch_size > 0, in_model.max_batch_size > 0
    if batched_out != batched_in:
        problems.append(f"{_where(in_path, 'max_batch_size') if batched_in else in_path}: {in_model.name!r} has "
                        f"max_batch_size {in_model.max_batch_size}, {out_model.name!r} {out_model.max_batch_size}: with "
                        "max_batch_size > 0 dims exclude the batch dimension, with 0 they include it; make both batch")
    elif len(out.dims) == len(inp.dims) and any(a != b and -1 not in (a, b) for a, b in zip(out.dims, inp.dims)):
        problems.append(f"{_where(in_path, inp.name)}: input {inp.name!r} of {consumer!r} has dims {list(inp.dims)}, "
                        f"{tensor!r} is declared {list(out.dims)} ({_where(out_path, out.name)})")
    elif len(out.dims) != len(inp.dims) and -1 not in out.dims:
        problems.append(f"{_where(in_path, inp.name)}: input {inp.name!r} of {consumer!r} has {len(inp.dims)} dims "
                        f"{list(inp.dims)}, {tensor!r} {len(out.dims)}: {list(out.dims)}")
    if served_layout and out_model.name == served_layout[0] and len(inp.dims) == 3:
        declared = "CHW" if inp.dims[0] in (1, 3) else "HWC" if inp.dims[-1] in (1, 3) else None
        if declared and declared != served_layout[1]:
            problems.append(f"{_where(in_path, inp.name)}: {consumer!r} declares {inp.name!r} dims {list(inp.dims)} "
                            f"({declared}), but {out_model.name!r} emits {served_layout[1]} (its last operator: "
                            f"{served_layout[2]}): set output_layout='{declared}' in fn.crop_mirror_normalize "
                            "or add fn.transpose")
    return problems
