"""The seed's ensemble as deployed, served by a real tritonserver on 127.0.0.1 (no mock)."""

import json
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from parity import ParityConfigError, assert_triton_parity, check_preprocessing_parity, load_config
from parity.config.sections import TritonSection
from parity.serving.triton import (
    EmbeddedServer,
    ParityTritonError,
    TritonClient,
    prepare_embedded,
    read_config,
    read_repository,
)

from .conftest import IMAGES, ROOT, SEED, write_config

REPOS = ROOT / "fixtures" / "triton" / "build"
ANSWERS = json.loads((ROOT / "fixtures" / "model" / "build" / "answers.json").read_text()) \
    if (ROOT / "fixtures" / "model" / "build" / "answers.json").is_file() else {}


@dataclass
class Servers:
    """The tritonservers (and their stubs) one test starts, and no one else's: parity's servers serve from a
    folder under the temporary directory, here the test's own, so other runs on the machine are not counted,
    and a server whose watchdog died (reparented) still is."""

    folder: Path
    made: list = field(default_factory=list)  # every temporary folder made meanwhile

    def started(self) -> int:
        """Servers started under ``folder``, so that ``running()`` saw them."""
        return sum(Path(made).parent == self.folder and Path(made).name.startswith("parity-triton-")
                   for made in self.made)

    def running(self) -> int:
        out = subprocess.run(["pgrep", "-c", "-f", f"{self.folder}/parity-triton-"], capture_output=True, text=True)
        return int(out.stdout.strip() or 0)


@pytest.fixture
def servers(tmp_path, monkeypatch) -> Servers:
    watch = Servers(tmp_path / "servers")
    watch.folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(watch.folder))
    mkdtemp = tempfile.mkdtemp

    def recorded(*args, **kwargs):
        made = mkdtemp(*args, **kwargs)
        watch.made.append(made)
        return made

    monkeypatch.setattr(tempfile, "mkdtemp", recorded)
    return watch


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_configs_are_parsed_with_tritons_protobuf_and_only_missing_backends_are_substituted(tmp_path):
    models = read_repository(REPOS / "seed_repository")
    assert {name: (cfg.backend or cfg.platform) for name, (_, cfg) in models.items()} == {
        "classifier": "tensorrt_plan", "ensemble": "ensemble", "preprocess": "dali"}
    ensemble = models["ensemble"][1]
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == ["preprocess", "classifier"]
    lines = prepare_embedded(REPOS / "seed_repository", tmp_path / "repo")
    assert sorted(lines) == ["classifier: tensorrt_plan -> python stand-in (OnnxModel)",
                             "preprocess: dali -> python stand-in (DaliModel)"]
    # the ensemble and its step mapping are served exactly as written
    assert (tmp_path / "repo/ensemble/config.pbtxt").read_text() == \
        (REPOS / "seed_repository/ensemble/config.pbtxt").read_text()
    from tritonclient.grpc import model_config_pb2

    served = read_config(tmp_path / "repo/preprocess/config.pbtxt")
    assert served.backend == "python"
    assert served.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert [o.name for o in served.output] == ["PREPROCESSED"] and served.max_batch_size == 8


def test_repository_mistakes_are_named(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text('name: "m"\nplatform: "tensorrt_plan"\ninput [ { name: \n')
    with pytest.raises(ParityTritonError, match=r"m/config.pbtxt: not a valid Triton model config"):
        read_repository(tmp_path)
    shutil.copytree(REPOS / "seed_repository", tmp_path / "repo")
    (tmp_path / "repo/classifier/1/model.onnx").unlink()
    with pytest.raises(ParityTritonError, match=r"needs the ONNX it was built from.*triton.onnx=\{'classifier'"):
        prepare_embedded(tmp_path / "repo", tmp_path / "served")


@pytest.mark.slow
def test_seed_ensemble_fails_loudly_with_the_servers_own_words(servers):
    results = check_preprocessing_parity(SEED / "parity_triton_deployed.py", [IMAGES / "astronaut.png"])
    triton = results[0].triton
    assert triton.status == "failed" and triton.backend == "triton (embedded)"
    message = triton.message()
    assert "unexpected shape for input 'input' for model 'classifier'. Expected [-1,3,512,384], got [1,512,384,3]" \
        in message
    assert "missing_normalization" in message and "layout" in message  # pointed back to preprocessing
    assert "Top-1:" not in message  # a refused request has no answer to compare
    assert "CPU stand-ins for models whose backends it lacks: classifier: tensorrt_plan" in message
    assert servers.started() == 1
    assert servers.running() == 0  # the server is stopped


@pytest.mark.slow
def test_corrected_ensemble_answers_like_the_reference():
    results = assert_triton_parity(SEED / "parity_triton_corrected.py")
    assert [r.triton.dali_top1 for r in results] == [ANSWERS[r.image] for r in results]
    assert max(r.triton.kl for r in results) < 1e-5


@pytest.mark.slow
def test_server_lifecycle_ports_and_log(tmp_path):
    server = EmbeddedServer(REPOS / "corrected_repository", timeout_s=90)
    with server:
        assert _port_open(server.grpc_port) and _port_open(server.http_port)
        client = TritonClient(server.url, "ensemble", "INPUT", "OUTPUT", timeout_s=30)
        with pytest.raises(ParityTritonError, match=r"triton.input='IMAGE'.*INPUT UINT8 \[-1, -1, -1, 3\]"):
            TritonClient(server.url, "ensemble", "IMAGE", "OUTPUT", timeout_s=30)
        with pytest.raises(ParityTritonError, match=r"triton.model='ensembel' is not ready.*'ensemble'"):
            TritonClient(server.url, "ensembel", "INPUT", "OUTPUT", timeout_s=30)
        client.close()
        assert "successfully loaded 'ensemble'" in server.log_path.read_text()
    assert server.process is None and not _port_open(server.grpc_port)
    assert not server.workdir.exists()  # a clean stop leaves nothing behind


@pytest.mark.slow
def test_a_parity_py_in_the_working_directory_does_not_shadow_parity_in_the_servers_stubs(tmp_path, monkeypatch):
    """A user's project with its own parity.py: the server's Python models still import the real parity."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "parity.py").write_text("raise SystemExit('the project parity.py was imported')\n")
    monkeypatch.chdir(project)
    with EmbeddedServer(REPOS / "corrected_repository", timeout_s=90) as server:
        assert "successfully loaded 'ensemble'" in server.log_path.read_text()


@pytest.mark.slow
def test_a_repository_that_does_not_load_reports_the_log_and_leaves_no_process(tmp_path, servers):
    shutil.copytree(REPOS / "corrected_repository", tmp_path / "repo", symlinks=True)
    (tmp_path / "repo/preprocess/1/model.dali").write_bytes(b"\x00garbage")
    with pytest.raises(ParityTritonError, match="tritonserver exited with code .* while loading") as excinfo:
        EmbeddedServer(tmp_path / "repo", timeout_s=60).start()
    assert "preprocess" in str(excinfo.value)
    assert servers.started() == 1
    assert servers.running() == 0


def test_an_unreachable_server_is_one_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ParityTritonError, match=rf"Triton at 127.0.0.1:{port} cannot be reached"):
        TritonClient(f"127.0.0.1:{port}", "ensemble", "INPUT", "OUTPUT", timeout_s=3)


def test_triton_config_needs_one_mode_an_existing_repository_and_a_model_section(tmp_path):
    with pytest.raises(ParityConfigError, match="triton: give exactly one of repository="):
        load_config(write_config(tmp_path, pipeline="p.py:f", extra="triton = dict(model='ensemble')\n"))
    with pytest.raises(ParityConfigError, match="triton.repository='nope': folder not found"):
        load_config(write_config(tmp_path, pipeline="p.py:f", extra="triton = dict(repository='nope')\n"))
    with pytest.raises(ParityConfigError, match="add a `model` section"):
        load_config(write_config(tmp_path, pipeline="p.py:f", extra="triton = dict(url='127.0.0.1:8001')\n"))


@pytest.mark.slow
def test_triton_items_in_pytest(pytester):
    result = pytester.runpytest_subprocess("--parity-config", str(SEED / "parity_triton_corrected.py"), "-v")
    # the repository check, 8 images x (5 stages, model, triton), the degenerate-output check
    result.assert_outcomes(passed=60, skipped=1)  # gpu_risk and determinism pass, gpu_vs_cpu skips
    result.stdout.fnmatch_lines(["*parity_triton_corrected.py::triton_repository PASSED*",
                                 "*parity_triton_corrected.py::astronaut::triton PASSED*",
                                 "*triton (embedded): 8 passed, 0 failed, 0 skipped; top-1 agreement 8/8*"])


@pytest.mark.slow
def test_remote_mode_talks_to_a_running_server(tmp_path):
    """The same check against a server someone else started (here: one we start, then point a url at)."""
    with EmbeddedServer(REPOS / "corrected_repository", timeout_s=90) as server:
        cfg = load_config(SEED / "parity_corrected.py")
        cfg.triton = TritonSection(url=server.url, timeout_s=30.0)
        results = assert_triton_parity(cfg, [IMAGES / "coffee.png", IMAGES / "noise.png"])
    assert [r.triton.backend for r in results] == ["triton (remote)"] * 2
    assert [r.triton.dali_top1 for r in results] == [ANSWERS["coffee"], ANSWERS["noise"]]


STALE_MODEL = '''
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """A deliberately broken step: answers each request with the previous request's tensor."""

    def initialize(self, args):
        self.previous = None

    def execute(self, requests):
        responses = []
        for request in requests:
            current = pb_utils.get_input_tensor_by_name(request, "IN").as_numpy().copy()
            answer = current if self.previous is None else self.previous
            self.previous = current
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUT", answer)]))
        return responses
'''


@pytest.mark.slow
def test_an_ensemble_that_answers_with_the_previous_requests_output_is_called_stale(tmp_path):
    """PAINS 7: a DALI ensemble returning the previous batch's outputs. Here a real Python-backend step
    at the end of the seed's corrected ensemble holds each answer back by one request."""
    repo = tmp_path / "repo"
    shutil.copytree(REPOS / "corrected_repository", repo, symlinks=True)
    (repo / "stale" / "1").mkdir(parents=True)
    (repo / "stale" / "1" / "model.py").write_text(STALE_MODEL)
    (repo / "stale" / "config.pbtxt").write_text(
        'name: "stale"\nbackend: "python"\nmax_batch_size: 8\n'
        'input [ { name: "IN" data_type: TYPE_FP32 dims: [ 1000 ] } ]\n'
        'output [ { name: "OUT" data_type: TYPE_FP32 dims: [ 1000 ] } ]\n')
    ensemble = (repo / "ensemble" / "config.pbtxt").read_text().replace(
        'output_map { key: "logits" value: "OUTPUT" }',
        'output_map { key: "logits" value: "logits" }\n    },\n    {\n      model_name: "stale"\n'
        '      model_version: -1\n      input_map { key: "IN" value: "logits" }\n'
        '      output_map { key: "OUT" value: "OUTPUT" }')
    (repo / "ensemble" / "config.pbtxt").write_text(ensemble)
    cfg = write_config(tmp_path, pipeline=str(SEED / "corrected_pipeline.py") + ":hrnet_w30_cls_preprocess_pipeline",
                       input_name="INPUT_PREPROCESS", output_layout="CHW",
                       extra=f"model = dict(config='mmpretrain::resnet/resnet18_8xb32_in1k.py', "
                             f"checkpoint={str(ROOT / 'fixtures/model/build/known_answer.pth')!r}, "
                             f"onnx={str(ROOT / 'fixtures/model/build/known_answer.onnx')!r})\n"
                             f"triton = dict(repository={str(repo)!r}, model='ensemble', input='INPUT', "
                             "output='OUTPUT')\n")
    images = [IMAGES / f"{name}.png" for name in ("astronaut", "checker", "chelsea")]
    first, second, third = (r.triton for r in check_preprocessing_parity(cfg, images))
    assert first.status == "passed"  # the first request has nothing older to return
    assert second.status == third.status == "failed"
    assert "Stale answer: Triton's output is the reference's answer for the previous request (image 'astronaut'" \
        in second.message()
    assert "(image 'checker'" in third.message() and f"top-1 {ANSWERS['checker']}" in third.message()
