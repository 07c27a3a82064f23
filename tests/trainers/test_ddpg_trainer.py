"""Acceptance: a DDPG script written against TorchRL 0.14's documented Trainer API, with
``torchrl`` replaced by ``streamrl`` and nothing else, runs to the end and logs its scalars."""

from __future__ import annotations

import csv
import math

import pytest
import torch
from tensordict.nn import TensorDictSequential

from streamrl.collectors import Collector
from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
from streamrl.envs.libs.gym import GymEnv
from streamrl.envs.utils import ExplorationType
from streamrl.modules import MLP, Actor, AdditiveGaussianModule, ValueOperator
from streamrl.objectives import DDPGLoss, SoftUpdate
from streamrl.record import CSVLogger
from streamrl.trainers import (
    CountFramesLog,
    LogScalar,
    LogValidationReward,
    OptimizerHook,
    ReplayBufferTrainer,
    TargetNetUpdaterHook,
    Trainer,
    UpdateWeights,
)

TOTAL_FRAMES = 400
FRAMES_PER_BATCH = 50


def ddpg_script(log_dir, save_file):
    """The script, as TorchRL's docs put a DDPG trainer together."""
    torch.manual_seed(0)
    env = GymEnv("Pendulum-v1")
    actor = Actor(MLP(in_features=3, out_features=1, num_cells=[32, 32]))
    value = ValueOperator(
        MLP(in_features=4, out_features=1, num_cells=[32, 32]),
        in_keys=["observation", "action"],
    )
    exploration_policy = TensorDictSequential(
        actor, AdditiveGaussianModule(spec=env.action_spec, annealing_num_steps=TOTAL_FRAMES)
    )
    collector = Collector(
        lambda: GymEnv("Pendulum-v1"),
        exploration_policy,
        frames_per_batch=FRAMES_PER_BATCH,
        total_frames=TOTAL_FRAMES,
    )
    loss_module = DDPGLoss(actor_network=actor, value_network=value)
    target_net_updater = SoftUpdate(loss_module, eps=0.99)
    optimizer = torch.optim.Adam(loss_module.parameters(), lr=1e-3)
    logger = CSVLogger(exp_name="ddpg", log_dir=str(log_dir))

    trainer = Trainer(
        collector=collector,
        total_frames=TOTAL_FRAMES,
        frame_skip=1,
        optim_steps_per_batch=8,
        loss_module=loss_module,
        logger=logger,
        clip_norm=10.0,
        progress_bar=False,
        seed=0,
        log_interval=1,  # every batch (a value is sent once more than 1 frame passed)
        save_trainer_interval=2 * FRAMES_PER_BATCH,
        save_trainer_file=save_file,
    )
    replay_buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(10_000))
    ReplayBufferTrainer(replay_buffer, batch_size=64, flatten_tensordicts=True).register(trainer)
    OptimizerHook(optimizer).register(trainer)
    TargetNetUpdaterHook(target_net_updater).register(trainer)
    UpdateWeights(trainer.collector, update_weights_interval=1).register(trainer)
    LogScalar(("next", "reward"), "r_training", log_pbar=True).register(trainer)
    CountFramesLog(frame_skip=1).register(trainer)
    recorder = LogValidationReward(
        record_interval=4,
        record_frames=50,
        policy_exploration=actor,
        environment=GymEnv("Pendulum-v1"),
        exploration_type=ExplorationType.DETERMINISTIC,
    )
    recorder.register(trainer)
    trainer.train()
    return trainer, logger, replay_buffer


def _scalars(logger, name):
    with open(f"{logger.experiment.log_dir}/scalars/{name}.csv") as f:
        return [(int(step), float(value)) for step, value in csv.reader(f)]


def test_ddpg_script_runs_to_the_end_and_logs(tmp_path):
    trainer, logger, rb = ddpg_script(tmp_path / "logs", tmp_path / "trainer.pt")
    n_batches = TOTAL_FRAMES // FRAMES_PER_BATCH

    assert trainer.collected_frames == TOTAL_FRAMES
    assert trainer.optim_count == 8 * n_batches
    assert len(rb) == TOTAL_FRAMES
    # one row per batch for the per-batch scalars, at the frame count of the batch
    steps = [FRAMES_PER_BATCH * (i + 1) for i in range(n_batches)]
    assert [s for s, _ in _scalars(logger, "n_frames")] == steps
    assert [v for _, v in _scalars(logger, "n_frames")] == steps
    rewards = _scalars(logger, "r_training")
    assert [s for s, _ in rewards] == steps
    assert all(-16.3 <= v <= 0.0 for _, v in rewards)  # Pendulum's reward range
    assert len(_scalars(logger, "r_training_std")) == n_batches
    assert [v for _, v in _scalars(logger, "optim_steps")] == [8 * (i + 1) for i in
                                                              range(n_batches)]
    for name in ("loss_actor", "loss_value", "grad_norm_0"):
        values = [v for _, v in _scalars(logger, name)]
        assert len(values) == n_batches and all(math.isfinite(v) for v in values), name
    # evaluated at the 1st and 5th batch (record_interval=4): 50 steps each
    evaluation = _scalars(logger, "r_evaluation")
    assert [s for s, _ in evaluation] == [50, 250]
    totals = _scalars(logger, "total_r_evaluation")
    assert totals[0][1] == pytest.approx(50 * evaluation[0][1], rel=1e-5)

    # the trainer was saved (atomically, weights_only) and restores into a fresh script's
    saved = torch.load(tmp_path / "trainer.pt", weights_only=True)
    assert saved["state"]["collected_frames"] == TOTAL_FRAMES
    assert {"replay_buffer", "optimizer", "recorder", "count_frames_log"} <= set(saved)


def test_saved_trainer_restores_weights_buffer_and_counters(tmp_path):
    trainer, _, rb = ddpg_script(tmp_path / "a", tmp_path / "trainer.pt")
    fresh = Trainer(
        collector=[], total_frames=TOTAL_FRAMES, frame_skip=1, optim_steps_per_batch=8,
        loss_module=trainer.loss_module.__class__(
            actor_network=Actor(MLP(in_features=3, out_features=1, num_cells=[32, 32])),
            value_network=ValueOperator(MLP(in_features=4, out_features=1, num_cells=[32, 32]),
                                        in_keys=["observation", "action"]),
        ),
        progress_bar=False,
    )
    fresh_rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10_000))
    ReplayBufferTrainer(fresh_rb, batch_size=64, flatten_tensordicts=True).register(fresh)
    OptimizerHook(torch.optim.Adam(fresh.loss_module.parameters(), lr=1e-3)).register(fresh)
    count = CountFramesLog()
    count.register(fresh)
    fresh.load_from_file(tmp_path / "trainer.pt")
    assert fresh.collected_frames == TOTAL_FRAMES and fresh.optim_count == trainer.optim_count
    assert count.frame_count == TOTAL_FRAMES
    assert len(fresh_rb) == len(rb)
    for a, b in zip(trainer.loss_module.state_dict().values(),
                    fresh.loss_module.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
