"""Faults of the dataset tooling (``streamrl dataset create/info``, ``record_dataset``):
bad input refused with a clear error before any episode is played, and a ``--force``
replacement whose write fails keeps the old dataset."""

from __future__ import annotations

import minari
import pytest
import torch

from streamrl.cli import main
from streamrl.data.replay_buffers import LazyTensorStorage, TensorDictReplayBuffer
from streamrl.train import save_checkpoint
from streamrl.train.checkpoint_policy import load_checkpoint_state, policy_from_checkpoint
from streamrl.train.datasets import record_dataset, replay_rows
from tests.data.datasets.dataset_support import use_private_roots
from tests.train.recording_support import tiny_checkpoint


@pytest.fixture(autouse=True)
def roots(tmp_path, monkeypatch):
    return use_private_roots(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def sac_checkpoint(tmp_path_factory):
    return tiny_checkpoint("sac_pendulum", tmp_path_factory.mktemp("runs") / "sac")


def _usage_error(capsys, argv):
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err
    return err


def test_dataset_commands_refuse_bad_input(capsys, tmp_path, roots, sac_checkpoint):
    base = ["dataset", "create", "Pendulum-v1", "--policy", "random", "--episodes", "1"]
    assert "unknown env 'NoSuchEnv-v3'" in _usage_error(
        capsys, ["dataset", "create", "NoSuchEnv-v3", "--policy", "random", "--id", "x/y-v0"])
    missing = str(tmp_path / "nope" / "checkpoint.pt")
    assert "found no such file" in _usage_error(
        capsys, ["dataset", "create", "Pendulum-v1", "--policy", missing, "--id", "xx/y-v0"])
    assert "found no such file" in _usage_error(
        capsys, ["dataset", "create", "--from-replay", missing, "--id", "xx/y-v0"])
    assert "expected Minari's form" in _usage_error(capsys, [*base, "--id", "bad id"])
    assert main([*base, "--id", "xx/y-v0"]) == 0
    assert "already exists" in _usage_error(capsys, [*base, "--id", "xx/y-v0"])
    assert main([*base, "--episodes", "2", "--id", "xx/y-v0", "--force"]) == 0
    assert minari.load_dataset("xx/y-v0").total_episodes == 2
    assert "expected ENV and --policy" in _usage_error(
        capsys, ["dataset", "create", "Pendulum-v1", "--id", "xx/z-v0"])
    assert "trained in 'Pendulum-v1'" in _usage_error(
        capsys, ["dataset", "create", "MountainCarContinuous-v0", "--policy",
                 str(sac_checkpoint), "--id", "xx/z-v0"])
    other = save_checkpoint(tmp_path / "ppo.pt", {"pipeline": "ppo_cartpole",
                                                  "config": {"env_name": "CartPole-v1"}})
    err = _usage_error(capsys, ["dataset", "create", "CartPole-v1", "--policy", str(other),
                                "--id", "xx/z-v0"])
    assert "'ppo_cartpole' checkpoint: expected one of sac_mujoco, sac_pendulum, td3_mujoco" in err
    assert "expected a replay buffer" in _usage_error(
        capsys, ["dataset", "create", "--from-replay", str(other), "--id", "xx/z-v0"])
    assert "no local Minari dataset" in _usage_error(capsys, ["dataset", "info", "minari:no/such-v0"])
    assert "expected minari:ID, d4rl:PATH" in _usage_error(
        capsys, ["dataset", "info", str(tmp_path)])
    assert "expected a local HDF5 file" in _usage_error(
        capsys, ["dataset", "info", f"d4rl:{tmp_path / 'none.hdf5'}"])
    (tmp_path / "junk.hdf5").write_bytes(b"junk" * 10)
    assert "expected an HDF5 file" in _usage_error(
        capsys, ["dataset", "info", f"d4rl:{tmp_path / 'junk.hdf5'}"])
    # nothing half-written
    assert not any(p.name.startswith(".") for p in (roots / "xx").iterdir())


def test_record_dataset_refuses_bad_input(roots):
    with pytest.raises(ValueError, match="unknown env 'NoSuchEnv-v0'"):
        record_dataset("NoSuchEnv-v0", "random", 1, 0, "pd/x-v0")
    with pytest.raises(ValueError, match="expected Minari's form"):
        record_dataset("Pendulum-v1", "random", 1, 0, "no_version")
    with pytest.raises(ValueError, match="exploration: expected one of"):
        record_dataset("Pendulum-v1", "random", 1, 0, "pd/x-v0", exploration="greedy")
    with pytest.raises(ValueError, match="episodes: expected a positive int, found 0"):
        record_dataset("Pendulum-v1", "random", 0, 0, "pd/x-v0")
    with pytest.raises(ValueError, match="noise: expected a bounded continuous action space"):
        record_dataset("CartPole-v1", "random", 1, 0, "pd/x-v0", noise=0.1)
    record_dataset("Pendulum-v1", "random", 1, 0, "pd/x-v0")
    with pytest.raises(ValueError, match=r"already exists .*\(or --force to replace it\)"):
        record_dataset("Pendulum-v1", "random", 1, 1, "pd/x-v0")
    replaced = record_dataset("Pendulum-v1", "random", 2, 1, "pd/x-v0", force=True)
    assert minari.load_dataset("pd/x-v0").total_episodes == 2 and replaced.seeds == [1, 2]
    assert sorted(p.name for p in (roots / "pd").iterdir()) == ["x-v0"]  # no temporaries
    with pytest.raises(ValueError, match="the replay buffer is empty"):
        replay_rows(TensorDictReplayBuffer(storage=LazyTensorStorage(8)).state_dict())


def test_checkpoint_policy_refuses_other_checkpoints(tmp_path):
    from streamrl.train import save_checkpoint

    path = save_checkpoint(tmp_path / "checkpoint.pt",
                           {"pipeline": "ppo_cartpole", "config": {"env_name": "CartPole-v1"}})
    state = load_checkpoint_state(path)
    with pytest.raises(ValueError, match="is a 'ppo_cartpole' checkpoint: expected one of "
                                         "sac_mujoco, sac_pendulum, td3_mujoco"):
        policy_from_checkpoint(state, None, lambda n: None, path=path)
    with pytest.raises(FileNotFoundError, match="found no such file"):
        load_checkpoint_state(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="expected a streamrl checkpoint"):
        load_checkpoint_state(tmp_path / "junk.pt")
    bare = save_checkpoint(tmp_path / "bare.pt", {"w": torch.ones(1)})
    with pytest.raises(ValueError, match="expected a pipeline checkpoint"):
        load_checkpoint_state(bare)


def test_force_keeps_the_old_dataset_if_the_write_fails(roots, monkeypatch):
    import streamrl.train.datasets as datasets

    old = record_dataset("Pendulum-v1", "random", 1, 0, "pd/keep-v0")
    real = datasets.write_minari_dataset

    def write_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(datasets, "write_minari_dataset", write_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        record_dataset("Pendulum-v1", "random", 2, 5, "pd/keep-v0", force=True)
    ds = minari.load_dataset("pd/keep-v0")
    assert ds.total_episodes == 1
    assert float(next(ds.iterate_episodes()).rewards.sum()) == pytest.approx(old.returns[0],
                                                                            rel=1e-5)
    assert sorted(p.name for p in roots.iterdir()) == ["pd"]  # no temporary root left
    monkeypatch.setattr(datasets, "write_minari_dataset", real)
    new = record_dataset("Pendulum-v1", "random", 2, 5, "pd/keep-v0", force=True)
    assert minari.load_dataset("pd/keep-v0").total_episodes == 2 and new.seeds == [5, 6]
    assert sorted(p.name for p in roots.iterdir()) == ["pd"]
