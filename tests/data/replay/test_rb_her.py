"""HERReplayBuffer: each strategy takes the new goal from the right step of the right episode
(grouped by trajectory id, or split at the end flags), the relabelled rewards are the goal
env's, the other rows and the stored data are untouched, and bad input is refused before
anything is written."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import (
    HERReplayBuffer,
    HindsightStrategy,
    LazyTensorStorage,
    ListStorage,
    TensorDictMaxValueWriter,
)
from streamrl.envs import BitFlippingEnv

STRATEGIES = [s.value for s in HindsightStrategy]


def _steps(traj: int, start: int, length: int, *, last: bool) -> TensorDict:
    """``length`` steps of trajectory ``traj`` from step ``start``: the achieved goal after
    step t is ``[traj, t + 1]`` (before it ``[traj, t]``), the goal ``[-1, -1]``; ``last``
    ends the episode at its final step."""
    t = torch.arange(start, start + length, dtype=torch.float32)
    done = torch.zeros(length, 1, dtype=torch.bool)
    done[-1] = last
    achieved = torch.stack([torch.full_like(t, traj), t], -1)
    return TensorDict({
        "desired_goal": -torch.ones(length, 2), "achieved_goal": achieved,
        "collector": {"traj_ids": torch.full((length,), traj)},
        "next": {"achieved_goal": achieved + torch.tensor([0.0, 1.0]),
                 "desired_goal": -torch.ones(length, 2), "reward": -torch.ones(length, 1),
                 "done": done, "terminated": done.clone()},
    }, [length])


def _interleaved() -> list[TensorDict]:
    """Two envs' rows per batch, env-major as a batched collector writes them: trajectory 0
    (steps 0-5, ends), 1 (steps 0-3, ends), 2 (steps 0-1, running), 3 (steps 0-3, running)."""
    return [torch.cat([_steps(0, 0, 4, last=False), _steps(1, 0, 4, last=True)]),
            torch.cat([_steps(0, 4, 2, last=True), _steps(2, 0, 2, last=False),
                       _steps(3, 0, 4, last=False)])]


def _reward_of(td):
    return -(td["next", "achieved_goal"] != td["desired_goal"]).any(-1, keepdim=True).float()


def _buffer(strategy, *, her_ratio=1.0, size=100, **kwargs):
    return HERReplayBuffer(_reward_of, her_ratio=her_ratio, strategy=strategy,
                           storage=LazyTensorStorage(size), batch_size=64, **kwargs)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_takes_its_goal_from_the_right_step(strategy):
    torch.manual_seed(0)
    rb = _buffer(strategy)
    for batch in _interleaved():
        rb.extend(batch)
    lengths = {0: 6, 1: 4, 2: 2, 3: 4}
    for _ in range(5):
        batch = rb.sample()
        stored = rb.storage.get(batch["index"])
        traj, step = stored["achieved_goal"].unbind(-1)
        goal_traj, goal_at = batch["desired_goal"].unbind(-1)  # the goal after step goal_at - 1
        assert (batch["next", "desired_goal"] == batch["desired_goal"]).all()
        if strategy == "random":
            assert set(goal_traj.tolist()) <= set(lengths)
            continue
        assert (goal_traj == traj).all()  # the same episode
        ends = torch.tensor([float(lengths[int(x)]) for x in traj])
        if strategy == "final":
            assert (goal_at == ends).all()
        elif strategy == "future":
            assert ((goal_at >= step + 1) & (goal_at <= ends)).all()
        else:
            assert ((goal_at >= 1) & (goal_at <= ends)).all()
        # the rewards are recomputed for the new goals
        torch.testing.assert_close(batch["next", "reward"], _reward_of(batch))


def test_future_goals_cover_the_rest_of_the_episode_and_reach_it_at_its_own_step():
    torch.manual_seed(0)
    rb = _buffer("future", size=100)
    rb.extend(_steps(7, 0, 5, last=True))
    seen, reached = set(), 0
    for _ in range(30):
        batch = rb.sample()
        step = rb.storage.get(batch["index"])["achieved_goal"][:, 1]
        first = step == 0
        seen |= set(batch["desired_goal"][first, 1].tolist())
        reached += int((batch["next", "reward"] == 0).sum())
    assert seen == {1.0, 2.0, 3.0, 4.0, 5.0}  # from step 0: any later achieved goal
    assert reached > 0


def test_episodes_split_at_the_end_flags_without_trajectory_ids():
    torch.manual_seed(0)
    rb = _buffer("final")
    one = _steps(0, 0, 3, last=True).exclude("collector")
    two = _steps(1, 0, 4, last=True).exclude("collector")
    rb.extend(torch.cat([one, two]))
    batch = rb.sample()
    traj = rb.storage.get(batch["index"])["achieved_goal"][:, 0]
    expected = torch.where((traj == 0).unsqueeze(-1), torch.tensor([0.0, 3.0]),
                           torch.tensor([1.0, 4.0]))
    assert (batch["desired_goal"] == expected).all()


def test_terminated_alone_splits_episodes_too():
    torch.manual_seed(0)
    rb = HERReplayBuffer(_reward_of, her_ratio=1.0, strategy="final", batch_size=16,
                         storage=LazyTensorStorage(20))
    data = torch.cat([_steps(0, 0, 2, last=True), _steps(1, 0, 2, last=True)])
    rb.extend(data.exclude("collector", ("next", "done")))
    batch = rb.sample()
    traj = rb.storage.get(batch["index"])["achieved_goal"][:, 0]
    assert (batch["desired_goal"][:, 0] == traj).all()


def test_a_wrapped_buffer_keeps_the_rest_of_its_cut_oldest_episode():
    torch.manual_seed(0)
    rb = _buffer("episode", size=8)
    rb.extend(_steps(0, 0, 6, last=True))
    rb.extend(_steps(1, 0, 4, last=True))  # overwrites trajectory 0's first two steps
    for _ in range(5):
        batch = rb.sample()
        stored = rb.storage.get(batch["index"])
        oldest = stored["achieved_goal"][:, 0] == 0
        assert (batch["desired_goal"][oldest, 1] >= 3).all()  # steps 2-5 are left: goals 3-6
        assert (batch["desired_goal"][:, 0] == stored["achieved_goal"][:, 0]).all()


def test_only_the_first_her_ratio_rows_change_and_the_storage_never():
    torch.manual_seed(0)
    rb = _buffer("future", her_ratio=0.25)
    for batch in _interleaved():
        rb.extend(batch)
    before = rb.storage.get(torch.arange(len(rb))).clone()
    batch = rb.sample(40)
    stored = rb.storage.get(batch["index"])
    assert (batch[10:]["desired_goal"] == stored[10:]["desired_goal"]).all()
    assert (batch[10:]["next", "reward"] == stored[10:]["next", "reward"]).all()
    assert (batch[:10]["desired_goal"] != stored[:10]["desired_goal"]).all()
    assert (rb.storage.get(torch.arange(len(rb))) == before).all()


def test_relabelling_happens_without_the_info_and_before_the_transforms():
    torch.manual_seed(0)
    seen = []

    def transform(td):
        seen.append(td["desired_goal"].clone())
        return td

    rb = _buffer("final", transform=transform)
    rb.extend(_steps(0, 0, 3, last=True))
    plain = rb.sample(include_info=False)
    assert "index" not in plain.keys() and (plain["desired_goal"][:, 1] == 3).all()
    assert (seen[-1][:, 1] == 3).all()  # the transform saw the relabelled goals


def test_new_rows_are_goal_sources_after_a_write():
    torch.manual_seed(0)
    rb = _buffer("final")
    rb.extend(_steps(0, 0, 3, last=False))
    assert (rb.sample()["desired_goal"][:, 1] == 3).all()  # running: its latest row
    rb.extend(_steps(0, 3, 2, last=True))
    assert (rb.sample()["desired_goal"][:, 1] == 5).all()


def test_the_root_achieved_goal_is_used_when_next_has_none():
    torch.manual_seed(0)
    rb = HERReplayBuffer(lambda td: torch.zeros(td.shape[0], 1), her_ratio=1.0,
                         strategy="final", batch_size=8, storage=LazyTensorStorage(10))
    rb.extend(_steps(0, 0, 3, last=True).exclude(("next", "achieved_goal")))
    assert (rb.sample()["desired_goal"][:, 1] == 2).all()  # before the last step


def test_a_list_storage_works_too():
    torch.manual_seed(0)
    rb = HERReplayBuffer(_reward_of, her_ratio=1.0, strategy="final", batch_size=4,
                         storage=ListStorage(20))
    for row in _steps(0, 0, 3, last=True).unbind(0):
        rb.add(row)
    assert (rb.sample()["desired_goal"][:, 1] == 3).all()


def test_a_restored_buffer_relabels_from_the_restored_rows():
    torch.manual_seed(0)
    rb = _buffer("final")
    rb.extend(_steps(0, 0, 4, last=True))
    rb.sample()  # builds the grouping
    state = rb.state_dict()
    other = _buffer("final")
    other.extend(_steps(5, 0, 2, last=True))
    other.sample()
    other.load_state_dict(state)
    assert (other.sample()["desired_goal"] == torch.tensor([0.0, 4.0])).all()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_relabelled_rewards_are_the_goal_envs_own(strategy):
    """Bit flipping boards from a batched collector (trajectory ids, rows interleaved):
    every relabelled reward is ``env.compute_reward`` of the achieved and the new goal."""
    from streamrl.collectors import Collector

    env = BitFlippingEnv(3, batch_size=[4], seed=0)
    torch.manual_seed(0)
    rb = HERReplayBuffer(
        lambda td: env.compute_reward(td["next", "achieved_goal"], td["desired_goal"]),
        her_ratio=0.5, strategy=strategy, storage=LazyTensorStorage(1000), batch_size=200)
    collector = Collector(env, None, frames_per_batch=80, total_frames=240)
    for batch in collector:
        rb.extend(batch.reshape(-1))
    collector.shutdown()
    batch = rb.sample()
    expected = env.compute_reward(batch["next", "achieved_goal"], batch["desired_goal"])
    torch.testing.assert_close(batch["next", "reward"].squeeze(-1), expected)
    relabelled = batch[:100]
    if strategy != "random":  # a goal from its own episode (of 3 steps at most) is reached
        assert (relabelled["next", "reward"] == 0).float().mean() > 0.25  # often
    stored = rb.storage.get(batch["index"][100:])
    assert (batch[100:]["next", "reward"] == stored["next", "reward"]).all()


def test_bad_input_is_refused_before_anything_is_written():
    rb = _buffer("future")
    with pytest.raises(KeyError, match=r"the rows need 'desired_goal'; found \["):
        rb.extend(_steps(0, 0, 3, last=True).exclude("desired_goal"))
    with pytest.raises(KeyError, match=r"'achieved_goal' or its 'next' entry"):
        rb.extend(_steps(0, 0, 3, last=True).exclude("achieved_goal", ("next", "achieved_goal")))
    with pytest.raises(KeyError, match=r"'collector/traj_ids' \(trajectory ids\) or "
                                       r"'next/done' \(episode ends\)"):
        rb.extend(_steps(0, 0, 3, last=True).exclude("collector", ("next", "done"),
                                                     ("next", "terminated")))
    with pytest.raises(ValueError, match=r"add\(\) takes a TensorDict of batch size \[\], "
                                         r"found \[3\]"):
        rb.add(_steps(0, 0, 3, last=True))
    assert len(rb) == 0


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"her_ratio must be a float in \[0, 1\], found 1.5"):
        _buffer("future", her_ratio=1.5)
    with pytest.raises(ValueError, match=r"strategy must be one of \['future', 'final', "
                                         r"'episode', 'random'\], found 'later'"):
        _buffer("later")
    with pytest.raises(TypeError, match="reward_fn must be callable, found int"):
        HERReplayBuffer(3)
    with pytest.raises(ValueError, match="one storage dim, found ndim=2"):
        HERReplayBuffer(_reward_of, storage=LazyTensorStorage(10, ndim=2))
    with pytest.raises(ValueError, match="expected a RoundRobinWriter, found "
                                         "TensorDictMaxValueWriter"):
        HERReplayBuffer(_reward_of, writer=TensorDictMaxValueWriter(rank_key="r"))


def test_a_reward_fn_of_the_wrong_shape_is_named():
    rb = HERReplayBuffer(lambda td: torch.zeros(3), her_ratio=1.0, batch_size=8,
                         storage=LazyTensorStorage(10))
    rb.extend(_steps(0, 0, 4, last=True))
    with pytest.raises(ValueError, match=r"reward_fn returned shape \[3\] for 8 relabelled "
                                         r"rows; expected \[8, 1\] or \[8\]"):
        rb.sample()
