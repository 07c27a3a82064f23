"""Trainer(checkpoint=, checkpoint_rotation=, checkpoint_metadata=): the trainer's pieces as
checkpoint components, rotated scheduled saves, restore, and the argument rules."""

from __future__ import annotations

import pytest
import torch
from conftest import ListCollector, MSELoss, make_batch

from streamrl.checkpoint import Checkpoint, CheckpointError, CheckpointRotation
from streamrl.trainers import CountFramesLog, Trainer


def _trainer(loss, n_batches=4, **kwargs):
    batches = [make_batch(8, i) for i in range(n_batches)]
    return Trainer(collector=ListCollector(batches), total_frames=8 * n_batches, frame_skip=1,
                   optim_steps_per_batch=2, loss_module=loss, progress_bar=False,
                   optimizer=torch.optim.Adam(loss.parameters(), lr=0.01), **kwargs)


def test_the_trainer_pieces_become_components_and_user_ones_stay(loss):
    mine = torch.nn.Linear(1, 1)
    checkpoint = Checkpoint(policy=mine)
    trainer = _trainer(loss, checkpoint=checkpoint)
    count = CountFramesLog()
    count.register(trainer)  # registered after construction: added too
    assert set(checkpoint.components) == {
        "policy", "loss_module", "trainer_state", "optimizer", "trainer_module.count_frames_log"}
    assert checkpoint.components["policy"] is mine


def test_rotated_scheduled_saves_and_restore(loss, tmp_path):
    rotation = CheckpointRotation(tmp_path, keep_last=2)
    trainer = _trainer(loss, checkpoint=Checkpoint(), checkpoint_rotation=rotation,
                       save_trainer_interval=8,
                       checkpoint_metadata=lambda t: {"run": "test", "lr": 0.01})
    trainer.train()
    # saves at 8, 16, 24, 32 frames (and the final one at 32 again): the newest two remain
    assert [p.name for p in rotation.checkpoints()] == [
        "checkpoint-000000000024.pt", "checkpoint-000000000032.pt"]
    meta = Checkpoint.manifest(rotation.latest())["metadata"]
    assert meta == {"run": "test", "lr": 0.01, "collected_frames": 32, "optim_steps": 8,
                    "step": 32}

    torch.manual_seed(1)
    fresh_loss = MSELoss()
    fresh = _trainer(fresh_loss, checkpoint=Checkpoint())
    assert fresh.load_from_file(rotation.latest()) is fresh
    assert (fresh.collected_frames, fresh.optim_count) == (32, 8)
    torch.testing.assert_close(fresh_loss.net.weight, loss.net.weight)
    assert fresh.optimizer.state_dict()["state"][0]["step"] == 8  # Adam's state came back


def test_checkpoint_with_save_trainer_file_and_strict_load(loss, tmp_path):
    path = tmp_path / "run.pt"
    trainer = _trainer(loss, n_batches=1, checkpoint=Checkpoint(), save_trainer_file=path)
    trainer.train()
    assert Checkpoint.is_checkpoint(path)
    other = MSELoss()
    extra = torch.nn.Linear(3, 3)
    fresh = _trainer(other, n_batches=1, checkpoint=Checkpoint(extra=extra))
    with pytest.raises(CheckpointError, match="missing"):
        fresh.load_from_file(path)  # "extra" was not saved: nothing is loaded
    assert fresh.collected_frames == 0
    fresh.load_from_file(path, strict="ignore")
    assert fresh.collected_frames == 8
    with pytest.raises(TypeError, match="weights_only"):
        fresh.load_from_file(path, weights_only=True)


def test_no_destination_means_no_save(loss, tmp_path):
    trainer = _trainer(loss, n_batches=1, checkpoint=Checkpoint())
    trainer.train()
    assert list(tmp_path.iterdir()) == []


def test_argument_rules(loss, tmp_path):
    rotation = CheckpointRotation(tmp_path, keep_last=1)
    with pytest.raises(ValueError, match="needs checkpoint"):
        _trainer(loss, checkpoint_rotation=rotation)
    with pytest.raises(ValueError, match="not both"):
        _trainer(loss, checkpoint=Checkpoint(), checkpoint_rotation=rotation,
                 save_trainer_file=tmp_path / "x.pt")
    with pytest.raises(ValueError, match="needs checkpoint_rotation"):
        _trainer(loss, checkpoint=Checkpoint(), checkpoint_metadata=lambda t: {})
    with pytest.raises(TypeError, match="must be callable"):
        _trainer(loss, checkpoint=Checkpoint(), checkpoint_rotation=rotation,
                 checkpoint_metadata={"a": 1})
    with pytest.raises(TypeError, match=r"checkpoint must be a streamrl\.checkpoint\.Checkpoint"):
        _trainer(loss, checkpoint={"a": 1})
    trainer = _trainer(loss, n_batches=1, checkpoint=Checkpoint(), checkpoint_rotation=rotation,
                       checkpoint_metadata=lambda t: ["not", "a", "mapping"])
    with pytest.raises(TypeError, match="must return a mapping"):
        trainer.train()
