"""fit() under torchrun (DistributedDataParallel, gloo, 2 CPU processes) equals single-process
training on the same global batch: every rank sees rows rank::2 of each global batch of 64 and
DDP averages the gradients, which is the gradient of the global batch's mean loss."""
import os
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "tests" / "ddp_train_script.py"


def _run(cmd, env):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_torchrun_two_cpu_processes_match_single_process(tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun, "torchrun not found next to the interpreter"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    _run([sys.executable, str(SCRIPT), str(tmp_path / "single.pt")], env)
    _run([torchrun, "--standalone", "--nnodes", "1", "--nproc_per_node", "2", str(SCRIPT),
          str(tmp_path / "ddp.pt")], env)
    single = torch.load(tmp_path / "single.pt", weights_only=True)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    assert single["world"] == 1 and ddp["world"] == 2
    for a, b in zip(single["params"], ddp["params"]):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    assert ddp["loss"] == pytest.approx(single["loss"], rel=1e-4)
    assert single["loss"][-1] < single["loss"][0]
