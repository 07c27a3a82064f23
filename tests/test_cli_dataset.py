"""The command line: ``streamrl dataset create`` and ``streamrl dataset info``."""

from __future__ import annotations

import json

import minari
import pytest

from streamrl.cli import main
from streamrl.data.datasets import MinariExperienceReplay
from tests.data.datasets.dataset_support import use_private_roots, write_d4rl
from tests.train.recording_support import tiny_checkpoint


@pytest.fixture(autouse=True)
def roots(tmp_path, monkeypatch):
    return use_private_roots(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def sac_checkpoint(tmp_path_factory):
    return tiny_checkpoint("sac_pendulum", tmp_path_factory.mktemp("runs") / "sac")


def _info(capsys, spec):
    capsys.readouterr()
    assert main(["dataset", "info", spec, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_create_random_then_info(capsys, roots):
    assert main(["dataset", "create", "Pendulum-v1", "--policy", "random", "--episodes", "3",
                 "--seed", "4", "--id", "pendulum/random-v0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("wrote pendulum/random-v0: 3 episodes, 600 steps, return mean")
    info = _info(capsys, "minari:pendulum/random-v0")
    returns = [float(e.rewards.sum())
               for e in minari.load_dataset("pendulum/random-v0").iterate_episodes()]
    assert info["id"] == "pendulum/random-v0" and info["source"] == "minari"
    assert (info["episodes"], info["steps"]) == (3, 600)
    assert info["env_spec"] == "Pendulum-v1" and info["seeds"] == [4, 6]
    assert info["returns"]["mean"] == pytest.approx(sum(returns) / 3, rel=1e-6)
    assert info["returns"]["min"] == pytest.approx(min(returns), rel=1e-6)
    assert info["returns"]["max"] == pytest.approx(max(returns), rel=1e-6)
    assert info["algorithm_name"] == "random" and info["cache"] is None
    assert info["ref_min_score"] is None
    assert "Box(-2.0, 2.0, (1,), float32)" == info["action_space"]
    # once loaded, the streamrl cache shows; the dataset directory itself works as the spec
    MinariExperienceReplay("pendulum/random-v0", batch_size=4)
    again = _info(capsys, str(roots / "pendulum" / "random-v0"))
    assert again["cache"] is not None and again["cache"].endswith("minari/pendulum/random-v0")
    assert main(["dataset", "info", "minari:pendulum/random-v0"]) == 0
    text = capsys.readouterr().out
    for line in ("id:                pendulum/random-v0", "episodes:          3",
                 "seeds:             first 4, last 6", "ref scores:        none",
                 "env spec:          Pendulum-v1"):
        assert line in text


def test_create_from_a_checkpoint_and_from_its_replay(capsys, sac_checkpoint):
    assert main(["dataset", "create", "Pendulum-v1", "--policy", str(sac_checkpoint),
                 "--episodes", "2", "--id", "pendulum/expert-v0", "--ref-min-score", "-1400",
                 "--ref-max-score", "-150"]) == 0
    info = _info(capsys, "minari:pendulum/expert-v0")
    assert info["algorithm_name"] == "sac_pendulum" and (info["episodes"], info["steps"]) == (2, 400)
    assert (info["ref_min_score"], info["ref_max_score"]) == (-1400.0, -150.0)
    assert "sac_pendulum policy, deterministic actions" in info["description"]
    assert main(["dataset", "create", "--from-replay", str(sac_checkpoint),
                 "--id", "pendulum/medium-replay-v0"]) == 0
    info = _info(capsys, "minari:pendulum/medium-replay-v0")
    assert (info["episodes"], info["steps"]) == (2, 400) and info["seeds"] == [None, None]
    assert info["env_spec"] == "Pendulum-v1" and info["algorithm_name"] == "sac_pendulum"
    assert "replay buffer of sac_pendulum checkpoint" in info["description"]
    assert main(["dataset", "info", "minari:pendulum/medium-replay-v0"]) == 0
    assert "seeds:             unknown" in capsys.readouterr().out


def test_info_on_a_d4rl_file(capsys, tmp_path):
    fields = write_d4rl(tmp_path / "tiny.hdf5", n=35, episode_len=10)
    info = _info(capsys, f"d4rl:{tmp_path / 'tiny.hdf5'}")
    assert info["source"] == "d4rl" and info["id"] == "tiny"
    assert (info["episodes"], info["steps"], info["incomplete_steps"]) == (3, 35, 5)
    sums = [float(fields["rewards"][k * 10:(k + 1) * 10].astype("float64").sum()) for k in range(3)]
    assert info["returns"]["max"] == pytest.approx(max(sums))
    assert info["observation_space"] == "[3] float32" and info["action_space"] == "[2] float32"
    assert info["algorithm_name"] == "random"
