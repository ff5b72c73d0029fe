"""The Triton stage: send the images to an ensemble as the client would and compare its answers with
the reference. Remote mode talks to a running server; embedded mode starts a real ``tritonserver`` (the
binary in the nvidia-pytriton wheel) on 127.0.0.1 over a copy of the user's model repository in which
only models of missing backends are replaced by CPU stand-ins (:mod:`parity.serving.triton_models`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.config.sections import TritonSection
from parity.errors import ParityExtraError, ParityTritonError

_STAND_INS = {"dali": "DaliModel", "tensorrt_plan": "OnnxModel", "onnxruntime_onnx": "OnnxModel",
              "onnxruntime": "OnnxModel", "tensorrt": "OnnxModel"}
_DTYPES = {"TYPE_UINT8": "UINT8", "TYPE_FP32": "FP32", "TYPE_FP16": "FP16", "TYPE_INT32": "INT32",
           "TYPE_INT64": "INT64", "TYPE_STRING": "BYTES", "TYPE_FP64": "FP64"}


def read_config(path: Path):
    """Parse a config.pbtxt with Triton's own protobuf definitions (``ModelConfig``)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    try:
        return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    except (OSError, text_format.ParseError) as exc:
        raise ParityTritonError(f"{path}: not a valid Triton model config: {exc}") from None


def read_repository(repo: Path) -> dict:
    """{model name: ModelConfig} for every model folder with a config.pbtxt."""
    if not repo.is_dir():
        raise ParityTritonError(f"triton.repository: folder not found: {repo}")
    models = {}
    for folder in sorted(p for p in repo.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (folder / "config.pbtxt").is_file():
            raise ParityTritonError(f"{folder}: model folder without config.pbtxt; the embedded server needs each "
                                    "model's config to know its backend (Triton's auto-complete is not used)")
        config = read_config(folder / "config.pbtxt")
        models[config.name or folder.name] = (folder, config)
    if not models:
        raise ParityTritonError(f"{repo}: no model folder with a config.pbtxt")
    return models


def _kind(config) -> str:
    return config.backend or config.platform


def prepare_embedded(repo: Path, target: Path, onnx: dict | None = None) -> list[str]:
    """Copy ``repo`` into ``target``, replacing models of missing backends by Python stand-ins.

    Only the backend/platform and GPU instance kinds of those models change; ensembles and every other
    line of every config stay as written. Returns a line per substitution, for the log.
    """
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    substituted = []
    read_repository(repo)  # the user's repository, checked before anything is copied
    shutil.copytree(repo, target, symlinks=False, dirs_exist_ok=True, copy_function=_link_or_copy)
    for name, (folder, config) in read_repository(target).items():
        kind = _kind(config)
        if kind not in _STAND_INS:
            continue
        versions = [v for v in folder.iterdir() if v.is_dir() and v.name.isdigit()] or [folder / "1"]
        for version in versions:
            version.mkdir(exist_ok=True)
            if _STAND_INS[kind] == "OnnxModel":
                source = Path(onnx[name]).resolve() if onnx and name in onnx else version / "model.onnx"
                if not source.is_file():
                    raise ParityTritonError(f"{repo / name}: a {kind} model needs the ONNX it was built from to run "
                                            f"on the CPU: put model.onnx beside the engine or set "
                                            f"triton.onnx={{'{name}': 'path.onnx'}}")
                (version / "parity_onnx.txt").write_text(str(source))
            elif not (version / "model.dali").is_file():
                raise ParityTritonError(f"{repo / name / version.name}: dali model without model.dali")
            (version / "model.py").write_text(
                f"from parity.serving.triton_models import {_STAND_INS[kind]} as TritonPythonModel  # noqa: F401\n")
        config.ClearField("platform")
        config.backend = "python"
        for group in config.instance_group:
            group.kind = model_config_pb2.ModelInstanceGroup.KIND_CPU
            del group.gpus[:]
        (folder / "config.pbtxt").write_text(text_format.MessageToString(config))
        substituted.append(f"{name}: {kind} -> python stand-in ({_STAND_INS[kind]})")
    return substituted


def _link_or_copy(source: str, target: str) -> str:
    """Large files (weights, engines) are linked, not copied: the copy of a repository costs no disk. Small
    ones are copied, so that rewriting a config never touches the user's file."""
    if os.path.getsize(source) > 1 << 20:
        os.symlink(os.path.realpath(source), target)
        return target
    return shutil.copy2(source, target)


def _die_with_parent() -> None:
    """In the server's process, before exec: SIGTERM it when parity dies, even of SIGKILL (PR_SET_PDEATHSIG)."""
    _LIBC.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: nothing but the call itself runs between fork and exec


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pytriton_root() -> Path:
    import importlib.util

    # find_spec, not import: pytriton's own Python API needs packages the binary does not
    spec = importlib.util.find_spec("pytriton")
    root = Path(next(iter(spec.submodule_search_locations or []))) / "tritonserver" if spec else None
    if root is None or not (root / "bin" / "tritonserver").is_file():
        from parity.extras import EXTRAS

        raise ParityExtraError(f"the Triton stage without `triton.url` runs {EXTRAS['triton-server']}, not installed here: "
                               "pip install 'parity[triton-server]', or set `triton.url` to a running server")
    return root


class EmbeddedServer:
    """A real tritonserver on 127.0.0.1 with free ports; always stopped (exit, error, Ctrl-C, atexit)."""

    def __init__(self, repository: Path, *, timeout_s: float = 60.0, onnx: dict | None = None):
        self.timeout_s = timeout_s
        self.process: subprocess.Popen | None = None
        self.grpc_port = self.http_port = 0
        self.workdir = Path(tempfile.mkdtemp(prefix="parity-triton-"))
        self.repository = self.workdir / "models"
        self.log_path = self.workdir / "tritonserver.log"
        try:
            self.substituted = prepare_embedded(repository, self.repository, onnx)
        except BaseException:
            self.stop()
            raise

    def _backend_dir(self, root: Path) -> Path:
        backends = self.workdir / "backends" / "python"
        backends.mkdir(parents=True)
        for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
            shutil.copy(root / "backends" / "python" / name, backends / name)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.is_file():
            raise ParityTritonError(f"no Triton Python-backend stub for Python {version} in {stub.parent.parent}")
        shutil.copy(stub, backends / "triton_python_backend_stub")
        return backends.parent

    def start(self) -> EmbeddedServer:
        """Start the server and wait until it is ready; on any failure nothing is left (process, folder)."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> EmbeddedServer:
        root = _pytriton_root()
        backend_dir = self._backend_dir(root)
        self.http_port, self.grpc_port, metrics = _free_port(), _free_port(), _free_port()
        env = dict(os.environ)
        libs = Path(root).parent.parent / "nvidia_pytriton.libs"
        env["LD_LIBRARY_PATH"] = f"{libs}:{env.get('LD_LIBRARY_PATH', '')}"
        # the stub's interpreter finds this environment (DALI, ONNX Runtime, parity) through python3 on PATH
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        command = [sys.executable, "-m", "parity.serving.triton_watchdog", str(root / "bin" / "tritonserver"), f"--model-repository={self.repository}",
                   f"--backend-directory={backend_dir}", "--http-address=127.0.0.1", f"--http-port={self.http_port}",
                   "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}", f"--metrics-port={metrics}",
                   "--allow-metrics=false", "--allow-gpu-metrics=false", "--exit-on-error=true", "--log-verbose=0"]
        log = self.log_path.open("wb")
        # run in its own folder: the Python stubs put their working directory on sys.path, where a user's
        # parity.py (or any module named like one the models import) would shadow the real one
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
                                        start_new_session=True, preexec_fn=_die_with_parent)
        atexit.register(self.stop)
        deadline = time.monotonic() + self.timeout_s
        url = f"http://127.0.0.1:{self.http_port}/v2/health/ready"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ParityTritonError(f"tritonserver exited with code {code} while loading the repository:\n"
                                        f"{self.log_tail()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return self
            time.sleep(0.25)
        raise ParityTritonError(f"tritonserver was not ready within {self.timeout_s:.0f} s (triton.timeout_s):\n"
                                f"{self.log_tail()}")

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log_tail(self, lines: int = 8) -> str:
        """The server's error lines (model load failures first), then its last lines."""
        with contextlib.suppress(OSError):
            text = self.log_path.read_text(errors="replace").splitlines()
            errors = [line for line in text if line.startswith("E") and "CudaDriverHelper" not in line
                      and "unable to create stream" not in line]
            tail = [line for line in text[-lines:] if not line.startswith("|") and line not in errors]
            return "\n".join(errors[:10] + tail)
        return ""

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 15 s), then whatever is left of its process group (Python
        stubs it spawned while loading ignore SIGTERM), and remove its folder (messages quote the log)."""
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        atexit.unregister(self.stop)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass(frozen=True)
class IOSpec:
    name: str
    datatype: str
    shape: tuple


class TritonClient:
    """gRPC client for one ensemble: checks it is there and ready, and that the names and types match."""

    def __init__(self, url: str, model: str, input_name: str, output_name: str, *, timeout_s: float):
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        self._grpc, self._error = grpcclient, InferenceServerException
        self.model, self.timeout_s = model, timeout_s
        self.client = grpcclient.InferenceServerClient(url=url)
        try:
            if not self.client.is_server_live(client_timeout=timeout_s):
                raise ParityTritonError(f"Triton at {url} is not live")
            if not self.client.is_model_ready(model, client_timeout=timeout_s):
                names = [m.name for m in self.client.get_model_repository_index(client_timeout=timeout_s).models]
                raise ParityTritonError(f"triton.model={model!r} is not ready on {url}; models there: {names}")
            meta = self.client.get_model_metadata(model, client_timeout=timeout_s)
        except self._error as exc:
            raise ParityTritonError(f"Triton at {url} cannot be reached or queried: {exc.message()}") from None
        self.inputs = {t.name: IOSpec(t.name, t.datatype, tuple(t.shape)) for t in meta.inputs}
        self.outputs = {t.name: IOSpec(t.name, t.datatype, tuple(t.shape)) for t in meta.outputs}
        if input_name not in self.inputs:
            raise ParityTritonError(f"triton.input={input_name!r}: the model {model!r} takes "
                                    f"{[f'{s.name} {s.datatype} {list(s.shape)}' for s in self.inputs.values()]}")
        if output_name not in self.outputs:
            raise ParityTritonError(f"triton.output={output_name!r}: the model {model!r} returns "
                                    f"{[f'{s.name} {s.datatype} {list(s.shape)}' for s in self.outputs.values()]}")
        self.input, self.output = self.inputs[input_name], self.outputs[output_name]

    def infer(self, array: np.ndarray) -> np.ndarray:
        """One request; raises ParityTritonError with the server's message when it refuses."""
        expected = {"UINT8": np.uint8, "FP32": np.float32, "FP16": np.float16}.get(self.input.datatype)
        if expected is not None and array.dtype != expected:
            raise ParityTritonError(f"triton.input {self.input.name!r} takes {self.input.datatype}, the client "
                                    f"would send {array.dtype}")
        batched = len(self.input.shape) == array.ndim + 1
        data = array[None] if batched else array
        tensor = self._grpc.InferInput(self.input.name, list(data.shape), self.input.datatype)
        tensor.set_data_from_numpy(data)
        try:
            result = self.client.infer(self.model, [tensor], outputs=[self._grpc.InferRequestedOutput(self.output.name)],
                                       client_timeout=self.timeout_s)
        except self._error as exc:
            raise ParityTritonError(exc.message()) from None
        out = result.as_numpy(self.output.name)
        return out[0] if batched else out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()


class TritonCheck:
    """The triton stage: each image goes to the ensemble as the client sends it; the answer is compared
    with the reference network on the reference input (or, without one, the local deployed model)."""

    def __init__(self, cfg: TritonSection, base_dir: Path, model_check, repository=None):
        self.cfg = cfg
        self.repository = repository  # the static repository check, which explains refusals
        self.base_dir = base_dir
        self.model_check = model_check
        self.server: EmbeddedServer | None = None
        self.client: TritonClient | None = None
        self.mode = "embedded" if cfg.repository else "remote"
        self._previous: tuple[str, np.ndarray] | None = None  # (image, reference probabilities) of the last request

    def __enter__(self) -> TritonCheck:
        from parity.extras import require

        require("tritonclient.grpc", "triton", "the Triton stage (the config's `triton` section)")
        url, repository = self.cfg.url, self.cfg.repository
        try:
            if repository:
                onnx = {k: str((self.base_dir / v).resolve()) for k, v in (self.cfg.onnx or {}).items()}
                self.server = EmbeddedServer((self.base_dir / repository).resolve(),
                                             timeout_s=self.cfg.timeout_s, onnx=onnx).start()
                url = self.server.url
            assert url, "the config loader requires one of triton.repository and triton.url"
            self.client = TritonClient(url, self.cfg.model, self.cfg.input, self.cfg.output,
                                       timeout_s=self.cfg.timeout_s)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self.server is not None:
            self.server.stop()

    def _stale(self, p_out: np.ndarray) -> list[str]:
        """The answer belongs to the previous request: a model in the ensemble returns stale outputs (a
        DALI model reading the previous batch, a response cache keyed wrongly)."""
        from parity.serving.model import kl_divergence

        assert self._previous is not None
        image, p_prev = self._previous
        kl = kl_divergence(p_prev, p_out)
        if int(p_out.argmax()) != int(p_prev.argmax()) or kl > self.cfg.kl:
            return []
        return [f"Stale answer: Triton's output is the reference's answer for the previous request (image "
                f"{image!r}: top-1 {int(p_prev.argmax())}, KL {kl:.2g}), not for this one: a model in the ensemble "
                "returns the previous request's output"]

    def check(self, image: str, client_input: np.ndarray, ref, stages):
        """``ref`` is the reference's model input stage (:class:`~parity.reference.mmpretrain.RefStage`)."""
        from parity.results.logits import softmax
        from parity.serving.model import ModelResult, _preprocessing_note, answer_fields, answer_problems

        assert self.client is not None
        backend = f"triton ({self.mode})"
        note = _preprocessing_note(stages)
        served: tuple[str, ...] = ()
        if self.server is not None and self.server.substituted:
            served = ("served by a local tritonserver with CPU stand-ins for models whose backends it lacks: "
                      + "; ".join(self.server.substituted),)
        try:
            answer = self.client.infer(client_input)
        except ParityTritonError as exc:
            # the static repository check says what to change; the server's own words stay below it
            found = self.repository.problems if self.repository is not None else ()
            why = tuple(f"Why (triton_repository): {p}" for p in found)
            return ModelResult(image, backend, "failed", problems=(*why, f"Triton refused the request: {exc}"),
                               preprocessing=note, notes=served)
        ref_logits = self.model_check.reference_logits(image, ref)
        answer = np.asarray(answer, dtype=np.float64).reshape(-1)
        if answer.shape != ref_logits.shape:
            return ModelResult(image, backend, "failed", problems=(
                f"Triton's {self.cfg.output!r} has {answer.size} values, the reference {ref_logits.size}",),
                preprocessing=note)
        if self.cfg.output_kind == "probabilities":
            p_out, logits = answer, np.log(np.clip(answer, 1e-12, None))
        else:
            p_out, logits = softmax(answer), answer
        fields = answer_fields(ref_logits, logits, p_out, self.model_check.cfg.topk)
        problems = answer_problems(fields, "Triton", self.cfg.kl, "triton.kl")
        if problems and self._previous is not None:
            problems.extend(self._stale(p_out))
        self._previous = (image, softmax(ref_logits))
        return ModelResult(image, backend, "failed" if problems else "passed", **fields,
                           problems=tuple(problems), preprocessing=note, notes=served)
