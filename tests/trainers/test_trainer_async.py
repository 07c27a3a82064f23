"""Trainer(async_collection=True): the collector fills the buffer in the background while the
trainer optimizes on samples; frames come from the collector, utd_ratio is logged."""

from __future__ import annotations

import time

import gymnasium as gym
import pytest
import torch
from conftest import ListCollector, RecordingLogger
from tensordict import TensorDict

from streamrl.collectors import SyncDataCollector
from streamrl.data import LazyTensorStorage, TensorDictReplayBuffer
from streamrl.envs import GymEnv, GymWrapper
from streamrl.trainers import ReplayBufferTrainer, Trainer


class RewardRegression(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)

    def forward(self, td):
        err = self.net(td["observation"]) - td["next", "reward"]
        return TensorDict({"loss_reward": err.pow(2).mean()})


def cartpole():
    return GymEnv("CartPole-v1")


class FailingEnvError(RuntimeError):
    pass


class Breaking(gym.Wrapper):
    """CartPole whose 21st step raises."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps > 20:
            raise FailingEnvError("the env broke")
        return self.env.step(action)


def failing_env():
    return GymWrapper(Breaking())


def _trainer(collector, rb, **kwargs):
    loss = RewardRegression()
    trainer = Trainer(collector=collector, total_frames=160, frame_skip=1,
                      optim_steps_per_batch=2, loss_module=loss, progress_bar=False,
                      optimizer=torch.optim.SGD(loss.parameters(), lr=0.01),
                      async_collection=True, log_interval=1, **kwargs)
    ReplayBufferTrainer(rb, batch_size=8).register(trainer)
    return trainer


def test_async_trainer_optimizes_while_the_collector_fills_the_buffer():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(1000), batch_size=8)
    collector = SyncDataCollector(cartpole, None, frames_per_batch=16, total_frames=160,
                                  replay_buffer=rb)
    logger = RecordingLogger()
    trainer = _trainer(collector, rb, logger=logger)
    seen = []
    trainer.register_op("pre_steps_log", lambda batch: seen.append(batch))
    trainer.train()
    assert trainer.collected_frames == 160 == len(rb) == collector.written_frames
    assert trainer.optim_count > 0 and trainer.optim_count % 2 == 0
    assert seen and all(batch is None for batch in seen)
    assert trainer.modules["replay_buffer"].write_count == 0  # the collector wrote, not the hook
    ratios = [v for name, v, _ in logger.rows if name == "utd_ratio"]
    assert ratios and all(r > 0 for r in ratios)
    assert not collector.is_running()


class SlowWrites(TensorDictReplayBuffer):
    """A buffer whose writes lag: the rollouts run batches ahead of what it holds."""

    def extend(self, data):
        time.sleep(0.03)
        return super().extend(data)


def test_the_trainer_counts_the_frames_written_not_those_on_their_way():
    # the collector counts a batch when it leaves the rollouts; with slow writes the trainer
    # would reach total_frames and stop the collection before the last batches were written
    rb = SlowWrites(storage=LazyTensorStorage(1000), batch_size=8)
    collector = SyncDataCollector(cartpole, None, frames_per_batch=16, total_frames=160,
                                  replay_buffer=rb)
    trainer = _trainer(collector, rb)
    counted = []
    trainer.register_op("post_steps", lambda: counted.append((trainer.collected_frames,
                                                              len(rb))))
    trainer.train()
    assert trainer.collected_frames == 160 == len(rb) == collector.written_frames
    assert all(frames <= rows for frames, rows in counted)


@pytest.mark.parametrize("split_trajs", [False, True])
def test_written_frames_follow_the_collectors_count_from_where_it_stood(split_trajs):
    # a restored collector counts on from its saved frames; split_trajs writes padded rows:
    # written_frames is still the collector's frame count, batch by written batch
    rb = SlowWrites(storage=LazyTensorStorage(2000), batch_size=8)
    collector = SyncDataCollector(cartpole, None, frames_per_batch=16, total_frames=64,
                                  replay_buffer=rb, split_trajs=split_trajs)
    collector.frames = 100  # as load_state_dict leaves it
    assert collector.written_frames == 100
    collector.start()
    seen = []
    while collector.is_running():
        seen.append(collector.written_frames)
        time.sleep(0.005)
    assert collector.written_frames == collector.frames == 164
    assert seen == sorted(seen) and set(seen) <= {100, 116, 132, 148, 164}
    if split_trajs:
        assert len(rb) >= 64  # padded rows: more rows than frames once an episode ends
    else:
        assert len(rb) == 64
    collector.shutdown()


def test_written_frames_keep_a_bounded_record_over_many_small_batches():
    # one frame per batch: the marks of batches written long ago are dropped, the count stays
    # exact (a bounded list, not one entry per batch of the run)
    from streamrl.collectors import _base

    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(1000), batch_size=8)
    collector = SyncDataCollector(cartpole, None, frames_per_batch=1, total_frames=400,
                                  replay_buffer=rb)
    collector.start()
    seen, longest = [], 0
    while collector.is_running():
        seen.append(collector.written_frames)
        longest = max(longest, len(collector._frame_marks[1]))
        time.sleep(0.001)
    assert collector.written_frames == collector.frames == len(rb) == 400
    assert seen == sorted(seen)
    offset, marks = collector._frame_marks
    assert offset > 0 and len(marks) <= 400 - offset + 1
    assert longest <= 2 * _base._MARKS_KEPT + 8  # the writer lags the rollout a few batches
    collector.shutdown()


def test_a_failing_collection_stops_the_trainer_with_its_error():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(1000), batch_size=8)
    collector = SyncDataCollector(failing_env, None, frames_per_batch=16, total_frames=160,
                                  replay_buffer=rb)
    trainer = _trainer(collector, rb)
    with pytest.raises(Exception, match="the env broke"):
        trainer.train()
    assert not collector.is_running()


def test_async_needs_a_collector_with_a_replay_buffer():
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(10), batch_size=8)
    with pytest.raises(ValueError, match=r"replay_buffer=\.\.\..*ListCollector"):
        _trainer(ListCollector([]), rb)
    collector = SyncDataCollector(cartpole, None, frames_per_batch=16, total_frames=32)
    try:
        with pytest.raises(ValueError, match="needs a collector that fills a replay buffer"):
            _trainer(collector, rb)
    finally:
        collector.shutdown()
    with pytest.raises(TypeError, match="async_collection must be a bool"):
        Trainer(collector=[], total_frames=8, frame_skip=1, optim_steps_per_batch=1,
                loss_module=RewardRegression(), async_collection="yes")
