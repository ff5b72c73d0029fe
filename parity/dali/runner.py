"""Load a user's DALI pipeline (a ``pipeline_def`` function or a serialized ``model.dali``) and run it
with every operator's output exposed, on the CPU when no GPU is present.

Both forms take one path: the pipeline is serialized, its ``PipelineDef`` rewritten (device placement,
extra outputs) and deserialized. That is what lets a pipeline written for the GPU, or a ``model.dali``
copied out of a Triton model repository, be checked on a machine without CUDA.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import re
import sys
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parity.errors import ParityDaliError

CPU_ONLY_DEVICE_ID = -99999  # DALI's marker for "no GPU": deserialize() does not override the stored id
# Inputs of one DALI iteration stop at this many bytes (one image at least), whatever the batch size: DALI
# holds every operator's output of an iteration, tens of times its input in a many-operator pipeline (the
# exact OpenCV cubic `parity suggest` writes took 24 GB, killed, for sixteen copies of one 12-Mpx photo).
ITERATION_BYTES = 64 << 20

# Operators that move pixels around without changing what a pixel value means. Anything else that
# produces data (normalize, arithmetic, colour jitter) leaves the "pixel" value space.
_GEOMETRY = re.compile(r"Resize|Crop|Pad|Slice|Flip|Rotate|WarpAffine|Paste|Shear")
_SHAPING = re.compile(r"Resize|Crop|Pad|Slice|Rotate|WarpAffine|Paste")  # may change the output size
_PIXEL_PRESERVING = re.compile(
    r"^(ExternalSource|_ExternalSource|.*decoders__Image.*|ImageDecoder.*|MakeContiguous|Copy|Cast|"
    r"Transpose|Reshape|Reinterpret|ColorSpaceConversion|ExpandDims|Squeeze)$")
_CMN_VALUE_ARGS = ("mean", "std", "scale", "shift")


@dataclass(frozen=True)
class DaliStage:
    """One operator output of the user's pipeline, as it appears in their source."""

    name: str  # output name in the graph, e.g. "__Resize_0" or "INPUT_PREPROCESS"
    op: str  # schema name, e.g. "Resize"
    display: str  # what the user wrote, e.g. "resize"
    source: str  # "file.py:6: images = fn.resize(...)" when DALI recorded it
    args: dict = field(default_factory=dict, compare=False)
    inputs: tuple = ()
    arguments: dict = field(default_factory=dict, compare=False)  # argument inputs: name -> producing output
    device: str = field(default="", compare=False)  # as written ('cpu', 'gpu', 'mixed'), before any CPU rewrite

    @property
    def where(self) -> str:
        """How messages point at this operator: its source line, else its name in the graph."""
        return self.source or f"{self.display} ({self.name})"

    @property
    def is_input(self) -> bool:
        return self.op in ("ExternalSource", "_ExternalSource") or "decoders__" in self.op

    @property
    def is_geometry(self) -> bool:
        if self.op == "CropMirrorNormalize":
            return any(k.startswith("crop") for k in self.args) or bool(self.args.get("mirror"))
        return bool(_GEOMETRY.search(self.op))

    @property
    def changes_shape(self) -> bool:
        """Resize/crop/pad-like: these are what the two sides' geometry stages are paired by."""
        if self.op == "CropMirrorNormalize":
            return any(k.startswith("crop") for k in self.args)
        return bool(_SHAPING.search(self.op))

    @property
    def keeps_pixel_values(self) -> bool:
        """True when the output still holds image intensities (0..255 for 8-bit input)."""
        if self.op == "CropMirrorNormalize":
            return not any(k in self.args for k in _CMN_VALUE_ARGS) and self.args.get("dtype", 3) == 3
        return bool(_PIXEL_PRESERVING.match(self.op)) or self.is_geometry

    @property
    def label(self) -> str:
        """Short stage label for test ids: the user's function name, made unique by the caller."""
        return "input" if self.op in ("ExternalSource", "_ExternalSource") else self.display


def _arg_value(arg):
    if arg.is_vector:
        return [_arg_value(a) for a in arg.extra_args]
    for values in (arg.floats, arg.ints, arg.strings, arg.bools):
        if len(values):
            return values[0]
    return None


def _stage_from_op(op) -> list[DaliStage]:
    args = {a.name: _arg_value(a) for a in op.args}
    display = args.get("_display_name") or op.name
    source = ""
    if args.get("_origin_stack_filename"):
        # the innermost frame is last: it is the user's own line
        source = (f"{Path(args['_origin_stack_filename'][-1]).name}:{args['_origin_stack_lineno'][-1]}: "
                  f"{args['_origin_stack_line'][-1].strip()}")
    public = {k: v for k, v in args.items() if not k.startswith("_") and k not in ("device", "preserve_name")}
    inputs = tuple(i.name for i in op.input if not i.is_argument_input)
    arguments = {i.arg_name: i.name for i in op.input if i.is_argument_input}
    return [DaliStage(name=o.name, op=op.name, display=display, source=source, args=public, inputs=inputs,
                      arguments=arguments, device=args.get("device") or "") for o in op.output]


def _set_device(op, device: str) -> None:
    for arg in op.args:
        if arg.name == "device":
            del arg.strings[:]
            arg.strings.append(device)
    for io in list(op.input) + list(op.output):
        io.device = device


def rewrite(serialized: bytes, *, to_cpu: bool) -> tuple[bytes, list[DaliStage], list[str]]:
    """Expose every operator output as a pipeline output, moving every operator to the CPU if asked.

    Returns the new serialized pipeline, the stages in graph order, and the original output names
    (which stay first among the outputs, so the pipeline's own result is output 0).
    """
    from parity.dali import proto as dali_proto

    pipe = dali_proto.PipelineDef()
    try:
        pipe.ParseFromString(serialized)
    except Exception as exc:  # protobuf raises DecodeError and sometimes RuntimeError
        raise ParityDaliError(f"not a serialized DALI pipeline (protobuf PipelineDef): {exc}") from None
    if not pipe.IsInitialized() or not pipe.op or not pipe.pipe_outputs:  # empty, or cut short
        missing = ", ".join(pipe.FindInitializationErrors()) or "operators and outputs"
        raise ParityDaliError(f"not a complete serialized DALI pipeline (empty or truncated file? missing: {missing})")
    produced = {o.name for op in pipe.op for o in op.output}
    dangling = [i.name for op in pipe.op for i in op.input if i.name not in produced]
    dangling += [o.name for o in pipe.pipe_outputs if o.name not in produced]
    if dangling:  # cut at an operator boundary: it parses, but names data no operator makes
        raise ParityDaliError(f"not a complete serialized DALI pipeline (truncated? no operator produces "
                              f"{', '.join(dict.fromkeys(dangling))})")
    stages = [s for op in pipe.op for s in _stage_from_op(op)]  # before the rewrite: each keeps its written device
    if to_cpu:
        _check_cpu_support(pipe)
        for op in pipe.op:
            _set_device(op, "cpu")
        pipe.device_id = CPU_ONLY_DEVICE_ID
    device_of = {o.name: ("cpu" if to_cpu else o.device) for op in pipe.op for o in op.output}
    originals = [o.name for o in pipe.pipe_outputs]
    for out in pipe.pipe_outputs:
        out.device = device_of.get(out.name, out.device)
    for stage in stages:
        if stage.name not in originals:
            pipe.pipe_outputs.add(name=stage.name, device=device_of[stage.name], is_argument_input=False)
    return pipe.SerializeToString(), stages, originals


def _check_cpu_support(pipe) -> None:
    from nvidia.dali.ops import _registry

    cpu_ops = _registry.cpu_ops()
    missing = []
    for op in pipe.op:
        if op.name not in cpu_ops and op.name not in ("_ExternalSource",):
            stage = _stage_from_op(op)[0]
            missing.append(f"{op.name} ({stage.source or stage.display})")
    if missing:
        raise ParityDaliError(
            "the pipeline uses operators that DALI implements only on the GPU, so it cannot run on this "
            f"machine's CPU: {', '.join(missing)}. Run parity where a GPU is present (dali.device='gpu').")


def gpu_available() -> bool:
    """Whether DALI can see a CUDA device (False on machines without a driver)."""
    try:
        from nvidia.dali.backend import GetCUDADeviceCount  # type: ignore[attr-defined]

        return GetCUDADeviceCount() > 0
    except Exception:  # no driver: DALI raises from the CUDA call
        return False


def load_function(spec: str, base_dir: Path):
    """Import ``path/to/file.py:function`` or ``package.module:function``."""
    module_part, sep, func_name = spec.rpartition(":")
    if not sep or not module_part or not func_name:
        raise ParityDaliError(
            f"dali.pipeline={spec!r}: expected 'path/to/file.py:function' or 'package.module:function'")
    if module_part.endswith(".py"):
        path = (base_dir / module_part).resolve()
        if not path.is_file():
            raise ParityDaliError(f"dali.pipeline={spec!r}: file not found: {path}")
        mod_name = f"_parity_pipeline_{abs(hash(str(path)))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ParityDaliError(f"dali.pipeline={spec!r}: {path} cannot be imported as a Python module")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        sys.path.insert(0, str(path.parent))  # its sibling modules import, as when Python runs the file
        try:
            module_spec.loader.exec_module(module)
        except SystemExit as exc:  # sys.exit() or argparse at import time: never a silent exit 0
            raise ParityDaliError(f"dali.pipeline={spec!r}: importing {path} called sys.exit({exc.code!r}) (argparse "
                                  "or a script body at import time?): guard it with if __name__ == '__main__':") from None
        except Exception as exc:
            raise ParityDaliError(f"dali.pipeline={spec!r}: importing {path} failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
        finally:
            sys.path.remove(str(path.parent))
    else:
        try:
            module = importlib.import_module(module_part)
        except SystemExit as exc:
            raise ParityDaliError(f"dali.pipeline={spec!r}: importing {module_part!r} called sys.exit({exc.code!r})") from None
        except Exception as exc:
            raise ParityDaliError(f"dali.pipeline={spec!r}: cannot import {module_part!r}: {type(exc).__name__}: "
                                  f"{exc}") from exc
    func = getattr(module, func_name, None)
    if func is None:
        raise ParityDaliError(f"dali.pipeline={spec!r}: {module_part} has no function {func_name!r}")
    return func


def serialize_function(func, spec: str, *, batch_size: int, num_threads: int) -> bytes:
    """Build the user's ``pipeline_def`` graph without CUDA and serialize it."""
    from nvidia.dali import Pipeline

    if not getattr(func, "_is_pipeline_def", False):
        raise ParityDaliError(f"dali.pipeline={spec!r} is not a @pipeline_def function: decorate it with "
                              "@nvidia.dali.pipeline_def")
    try:
        pipe = func(device_id=None, batch_size=batch_size, num_threads=num_threads)
    except SystemExit as exc:
        raise ParityDaliError(f"dali.pipeline={spec!r}: defining the pipeline called sys.exit({exc.code!r})") from None
    except Exception as exc:
        raise ParityDaliError(f"dali.pipeline={spec!r}: defining the pipeline failed: "
                              f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(pipe, Pipeline):
        raise ParityDaliError(f"dali.pipeline={spec!r} returned {type(pipe).__name__}, not a DALI Pipeline: "
                              "decorate the function with @nvidia.dali.pipeline_def")
    try:
        return pipe.serialize()
    except Exception as exc:
        raise ParityDaliError(f"dali.pipeline={spec!r} does not build: {type(exc).__name__}: "
                              f"{_first_line(exc)}") from exc


_DALI_ERROR = re.compile(r"Error in (?P<device>\w+) operator `(?P<op>[^`]+)`.*?traceback:\s*"
                         r"(?:File \"(?P<file>[^\"]+)\", line (?P<line>\d+), in \S+\s+(?P<code>[^\n]*))?"
                         r".*?encountered:\s*(?P<reason>.+?)(?:\nC\+\+ context:|\nCurrent pipeline|\Z)", re.S)


def _first_line(exc: Exception) -> str:
    """DALI's error without its C++ context: the operator, the user's line and the reason it gives."""
    text = str(exc).strip()
    found = _DALI_ERROR.search(text)
    if found is None:  # other errors carry a C++ stack trace after the message: keep the first paragraph
        return text.split("\n\n")[0].split("\nStacktrace")[0]
    where = f" at {Path(found['file']).name}:{found['line']}: {found['code'].strip()}" if found["file"] else ""
    return f"{found['op']} ({found['device']}){where}: {' '.join(found['reason'].split())}"


class DaliRunner:
    """A rewritten, built DALI pipeline that returns every stage for each input image."""

    def __init__(self, serialized: bytes, *, source: str, input_name: str | None, device: str,
                 batch_size: int, num_threads: int):
        self.source = source
        self.device = device
        try:
            data, self.stages, self.outputs = rewrite(serialized, to_cpu=(device == "cpu"))
        except ParityDaliError as exc:
            raise ParityDaliError(f"{source}: {exc}") from None
        if not self.outputs:
            raise ParityDaliError(f"{source}: the serialized pipeline has no outputs (empty or truncated file?)")
        externals = [s for s in self.stages if s.op in ("ExternalSource", "_ExternalSource")]
        names = [s.name for s in externals]
        if input_name is None and len(names) == 1:
            input_name = names[0]
        if input_name not in names:
            raise ParityDaliError(f"{source}: dali.input_name={input_name!r} is not an external_source of the "
                                  f"pipeline; its external sources are {names or 'none'}")
        self.input_name = input_name
        self.input_stage = externals[names.index(input_name)]
        if len(names) > 1:
            raise ParityDaliError(f"{source}: the pipeline has several external sources {names}; parity feeds "
                                  "one image input")
        self.batch_size = batch_size
        self._rebuild = functools.partial(self._build, data, num_threads)
        self._pipe = self._rebuild()

    def _build(self, data: bytes, num_threads: int):
        from nvidia.dali import Pipeline

        try:
            pipe = Pipeline.deserialize(
                serialized_pipeline=data, device_id=None if self.device == "cpu" else 0,
                batch_size=self.batch_size, num_threads=num_threads, prefetch_queue_depth=1,
                exec_async=False, exec_pipelined=False)
            pipe.build()
        except Exception as exc:
            raise ParityDaliError(f"{self.source}: the DALI pipeline does not build on the "
                                  f"{self.device.upper()}: {_first_line(exc)}") from exc
        return pipe

    def batches(self, inputs: list[np.ndarray]) -> Iterator[list[np.ndarray]]:
        """``inputs`` cut into DALI iterations: at most ``batch_size`` images and :data:`ITERATION_BYTES`."""
        batch: list[np.ndarray] = []
        size = 0
        for array in inputs:
            if batch and (len(batch) == self.batch_size or size + array.nbytes > ITERATION_BYTES):
                yield batch
                batch, size = [], 0
            batch.append(array)
            size += array.nbytes
        if batch:
            yield batch

    def run(self, inputs: list[np.ndarray], keep: Collection[str] | None = None) -> list[dict[str, np.ndarray]]:
        """Run ``inputs`` (decoded HWC images or encoded bytes) in batches; one {stage: array} per input, of
        the stages named in ``keep`` (every stage when None)."""
        return [out for batch in self.batches(inputs) for out in self._run_batch(batch, keep)]

    def run_each(self, inputs: list[np.ndarray], names: list[str],
                 keep: Collection[str] | None = None) -> list[dict[str, np.ndarray] | ParityDaliError]:
        """As :meth:`run`, but a batch DALI fails on is run again one image at a time (on a rebuilt pipeline:
        DALI invalidates one after an error), so the error names its image and the other images go on."""
        results: list = []
        start = 0
        for batch in self.batches(inputs):
            try:
                results.extend(self._run_batch(batch, keep))
            except ParityDaliError:
                self._pipe = self._rebuild()
                for array, name in zip(batch, names[start:start + len(batch)]):
                    try:
                        results.extend(self._run_batch([array], keep))
                    except ParityDaliError as exc:
                        self._pipe = self._rebuild()
                        results.append(ParityDaliError(f"{exc} (image {name})"))
            start += len(batch)
        return results

    def _run_batch(self, batch: list[np.ndarray], keep: Collection[str] | None) -> list[dict[str, np.ndarray]]:
        feed = {}
        if batch[0].ndim == 3 and "layout" not in self.input_stage.args:
            feed["layout"] = "HWC"
        try:
            self._pipe.feed_input(self.input_name, batch, **feed)
            outputs = self._pipe.run()
        except Exception as exc:
            raise ParityDaliError(f"{self.source}: running the DALI pipeline failed: {_first_line(exc)}") from exc
        names = self.outputs + [s.name for s in self.stages if s.name not in self.outputs]
        per_image: list[dict[str, np.ndarray]] = [{} for _ in batch]
        self.layouts = {}
        for name, tensor_list in zip(names, outputs):
            self.layouts[name] = tensor_list.layout()
            if keep is not None and name not in keep:
                continue
            if hasattr(tensor_list, "as_cpu"):
                tensor_list = tensor_list.as_cpu()
            for i in range(len(batch)):
                per_image[i][name] = np.array(tensor_list[i])
        return per_image


@functools.cache
def _silence_dali_warnings() -> None:
    import warnings

    warnings.filterwarnings("ignore", module="nvidia.dali")


def open_pipeline(*, pipeline: str | None, serialized: str | None, base_dir: Path, input_name: str | None,
                  device: str, batch_size: int, num_threads: int) -> DaliRunner:
    """Entry point: one of ``pipeline`` ('file.py:function') or ``serialized`` (a model.dali path)."""
    from parity.extras import require

    require("nvidia.dali", "dali", "running the DALI pipeline")
    require("google.protobuf", "dali", "reading the serialized DALI pipeline")
    _silence_dali_warnings()
    if device == "auto":
        device = "gpu" if gpu_available() else "cpu"
    if pipeline:
        func = load_function(pipeline, base_dir)
        data = serialize_function(func, pipeline, batch_size=batch_size, num_threads=num_threads)
        source = pipeline
    else:
        path = (base_dir / str(serialized)).resolve()
        if not path.is_file():
            raise ParityDaliError(f"dali.serialized={serialized!r}: file not found: {path}")
        data = path.read_bytes()
        source = str(path)
    return DaliRunner(data, source=source, input_name=input_name, device=device,
                      batch_size=batch_size, num_threads=num_threads)
