"""What keeps a run fast without changing a verdict: the stacks load out of the garbage collector's way, the
reference's images share the cores without torch's own threads, and a pytest-xdist controller reads no
MMPretrain config (benchmarks/bench_xdist.py measures the effect)."""

import gc
import subprocess
import sys
import weakref

import pytest
import torch

from parity.config.load import load_config
from parity.reference.mmpretrain import one_torch_thread
from parity.run import stacks
from parity.run.harness import Harness
from parity.run.stacks import loading_stacks

from .conftest import IMAGES, ROOT, SEED, write_config


def test_the_stacks_load_with_the_collector_paused_and_are_frozen_after(monkeypatch):
    monkeypatch.setattr(stacks, "_frozen", False)  # as in a fresh process
    assert gc.isenabled()
    with loading_stacks():
        assert not gc.isenabled()
        loaded = [[object()] for _ in range(1000)]
    assert gc.isenabled() and gc.get_freeze_count() >= len(loaded)  # later collections skip them
    gc.unfreeze()


def test_only_the_first_load_freezes_so_a_later_runs_cycles_are_still_collected(monkeypatch):
    """In-process runs (the API in a user's test suite): each later load froze every earlier run's uncollected
    cycles for good, DALI pipelines among them (a pytest worker grew to 16 GB and was OOM-killed)."""
    class Run:
        pass

    monkeypatch.setattr(stacks, "_frozen", False)
    with loading_stacks():
        pass
    frozen = gc.get_freeze_count()
    earlier = Run()
    earlier.me = earlier  # a cycle: only the collector frees it
    gone = weakref.ref(earlier)
    del earlier
    with loading_stacks():
        assert gc.isenabled()
    assert gc.get_freeze_count() == frozen
    gc.collect()
    assert gone() is None
    gc.unfreeze()


def test_torch_runs_one_thread_per_image_while_images_stream_and_is_restored_after(tmp_path):
    before = torch.get_num_threads()
    with one_torch_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before

    cfg = load_config(write_config(tmp_path, pipeline=f"{SEED / 'deployed_pipeline.py'}:hrnet_w30_cls_preprocess_pipeline",
                                   images=[str(IMAGES / "astronaut.png"), str(IMAGES / "chelsea.png")],
                                   input_name="INPUT_PREPROCESS"))
    stream = Harness(cfg).run()
    next(stream)
    assert torch.get_num_threads() == 1  # the reference pool's threads run one image each
    list(stream)
    assert torch.get_num_threads() == before


def test_a_config_read_without_its_reference_imports_no_training_package_and_runs_nothing():
    script = ("import sys\nfrom parity.config.load import load_config\n"
              f"cfg = load_config({str(SEED / 'parity_deployed.py')!r}, reference=False)\n"
              "assert 'mmengine' not in sys.modules and not cfg.reference_read and cfg.images\n"
              "from parity.run.harness import Harness\n"
              "try:\n    Harness(cfg)\nexcept ValueError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loaded with reference=False" in done.stdout


@pytest.mark.parametrize("reference", [True, False])
def test_the_images_and_the_dali_section_are_the_same_either_way(reference):
    cfg = load_config(SEED / "parity_deployed.py", reference=reference)
    assert cfg.images and cfg.dali.batch_size >= 1 and cfg.reference_read is reference
