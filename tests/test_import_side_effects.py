"""Importing streamrl changes no global state of another library."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os
import sys
import warnings
import torch
from tensordict.nn import composite_lp_aggregate, interaction_type
from tensordict.nn import ProbabilisticTensorDictModule
from tensordict import TensorDict
before = (composite_lp_aggregate(nowarn=True), interaction_type(), torch.get_default_dtype(),
          torch.get_num_threads(), os.environ.get("MUJOCO_GL"))
import streamrl, streamrl.data, streamrl.envs, streamrl.modules, streamrl.objectives
import streamrl.collectors, streamrl.ops, streamrl.train, streamrl.record, streamrl.trainers
import streamrl.checkpoint
after = (composite_lp_aggregate(nowarn=True), interaction_type(), torch.get_default_dtype(),
         torch.get_num_threads(), os.environ.get("MUJOCO_GL"))
assert before == after, (before, after)
# the simulators' libraries load when an env is built, not on import
loaded = {"dm_control", "dm_env", "mujoco", "ale_py"} & set(sys.modules)
assert not loaded, loaded
m = ProbabilisticTensorDictModule(in_keys=["loc", "scale"], out_keys=["action"],
                                  distribution_class=torch.distributions.Normal,
                                  return_log_prob=True)
td = m(TensorDict(loc=torch.zeros(3), scale=torch.ones(3), batch_size=[3]))
assert "action_log_prob" in td.keys() and "sample_log_prob" not in td.keys(), list(td.keys())
print("ok")
"""


def test_import_keeps_tensordict_and_torch_settings():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_tests_leave_importing_mujoco_to_the_envs():
    # MuJoCo reads MUJOCO_GL once, when first imported: a test that imports it (or calls
    # pytest.importorskip on it) before an env has chosen the headless backend breaks every
    # later test that renders (the dm_control pixel tests failed that way); skip by find_spec
    import re
    from pathlib import Path

    here = Path(__file__).resolve()
    pattern = re.compile(r"importorskip\(\s*[\"']mujoco|^\s*(import|from)\s+mujoco\b", re.M)
    offenders = [str(p.relative_to(here.parent)) for p in here.parent.rglob("*.py")
                 if p != here and pattern.search(p.read_text())]
    assert not offenders, offenders
