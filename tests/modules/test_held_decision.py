"""HeldDecision: a decision re-made every k steps, at episode starts and when the termination
signal fires, per row; the high policy runs on deciding rows only; relative goals follow
HIRO's goal transition; the carried entries travel through a collector; bad input is named
before any step."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential

from streamrl.data.specs import Categorical, Unbounded
from streamrl.envs import PointNavigationEnv
from streamrl.modules import HeldDecision


class _CountingHigh(TensorDictModule):
    """Decides ``observation + offset`` and records how many rows it was called on."""

    def __init__(self, offset: float = 0.3):
        super().__init__(lambda obs: obs + offset, ["observation"], [("hrl", "decision")])
        self.calls: list[int] = []

    def forward(self, td, *args, **kwargs):
        self.calls.append(td.shape[0])
        return super().forward(td, *args, **kwargs)


def _low():
    return TensorDictModule(lambda g: g * 0.5, [("hrl", "goal")], ["action"])


def test_decisions_every_k_steps_and_at_each_episode_start():
    high = _CountingHigh()
    held = HeldDecision(high, Unbounded(2), every=3)
    env = held.transform_env(PointNavigationEnv(batch_size=[2], max_steps=5, tolerance=None))
    rollout = env.rollout(11, TensorDictSequential(held, _low()), break_when_any_done=False)
    new = rollout["hrl", "new"].squeeze(-1)
    # episodes of 5 steps: decide at 0, 3, then the new episode at 5, 8, then 10
    expected = torch.zeros(11, dtype=torch.bool)
    expected[[0, 3, 5, 8, 10]] = True
    assert torch.equal(new[0], expected) and torch.equal(new[1], expected)
    assert rollout["hrl", "age"][0].squeeze(-1).tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 0, 1, 0]
    assert high.calls == [2] * 5  # only on the steps that decide
    # absolute goals: the low level reads the decision, held between decisions
    torch.testing.assert_close(rollout["hrl", "goal"], rollout["hrl", "decision"])
    torch.testing.assert_close(rollout["hrl", "decision"][:, 1], rollout["hrl", "decision"][:, 2])


def test_rows_decide_at_their_own_steps_and_only_they_call_the_high_policy():
    high = _CountingHigh()
    fired = {"step": 0}

    def terminate(td):  # row 0 terminates at its 2nd step, row 1 never
        fired["step"] += 1
        stop = torch.zeros(td.shape[0], 1, dtype=torch.bool)
        stop[0] = fired["step"] == 2
        return stop

    held = HeldDecision(high, Unbounded(2), every=4, terminate=terminate)
    env = held.transform_env(PointNavigationEnv(batch_size=[2], max_steps=20, tolerance=None))
    rollout = env.rollout(6, TensorDictSequential(held, _low()))
    new = rollout["hrl", "new"].squeeze(-1)
    assert new[0].tolist() == [True, True, False, False, False, True]
    assert new[1].tolist() == [True, False, False, False, True, False]
    assert high.calls == [2, 1, 1, 1]
    # a decision is kept by the rows that do not decide
    torch.testing.assert_close(rollout["hrl", "decision"][1, 1:4],
                               rollout["hrl", "decision"][1, :1].expand(3, 2))


def test_relative_goals_follow_hiros_goal_transition():
    held = HeldDecision(_CountingHigh(0.4), Unbounded(2), every=4, goal_mode="relative")
    env = held.transform_env(PointNavigationEnv(batch_size=[3], max_steps=50, tolerance=None))
    rollout = env.rollout(8, TensorDictSequential(held, _low()))
    s, g = rollout["observation"], rollout["hrl", "goal"]
    s_next = rollout["next", "observation"]
    new = rollout["hrl", "new"].squeeze(-1)
    for t in range(7):
        if not new[0, t + 1]:  # h(s, g, s') = s + g - s' inside a segment
            torch.testing.assert_close(g[:, t + 1], s[:, t] + g[:, t] - s_next[:, t])
    torch.testing.assert_close(g[:, 0], rollout["hrl", "decision"][:, 0])  # g = decision at t0


def test_option_indices_are_held_and_carried_by_a_collector():
    from streamrl.collectors import SyncDataCollector

    high = TensorDictModule(lambda obs: (obs[..., :1] > 0).long() + 1, ["observation"],
                            [("hrl", "decision")])
    held = HeldDecision(high, Categorical(3, shape=(1,)), every=2)
    low = TensorDictModule(lambda option: option.float().expand(*option.shape[:-1], 2) * 0.05,
                           [("hrl", "goal")], ["action"])
    env = held.transform_env(PointNavigationEnv(batch_size=[2], max_steps=7, tolerance=None))
    collector = SyncDataCollector(env, TensorDictSequential(held, low), frames_per_batch=10,
                                  total_frames=20)
    batches = list(collector)
    collector.shutdown()
    data = torch.cat([b for b in batches], dim=1)
    assert data["hrl", "decision"].dtype == torch.int64
    new = data["hrl", "new"].squeeze(-1)[0]
    # steps 0..9: episodes of 7 steps; decisions at 0, 2, 4, 6, the new episode's 7, 9 ...
    assert new.tolist()[:10] == [True, False, True, False, True, False, True, True, False, True]
    assert (data["hrl", "decision"][:, 1:] > 0).all()  # the first move made x > 0: option 2


def test_bad_input_is_named_before_any_step():
    high = _CountingHigh()
    with pytest.raises(ValueError, match=r"every must be an int >= 1 .* found 0"):
        HeldDecision(high, Unbounded(2), every=0)
    with pytest.raises(ValueError, match=r"give every .* or terminate"):
        HeldDecision(high, Unbounded(2))
    with pytest.raises(ValueError, match="goal_mode must be one of"):
        HeldDecision(high, Unbounded(2), every=2, goal_mode="polar")
    with pytest.raises(TypeError, match="decision_spec must be a TensorSpec, found int"):
        HeldDecision(high, 2, every=2)
    wide = HeldDecision(high, Unbounded(3), every=2, goal_mode="relative")
    with pytest.raises(ValueError, match=r"a relative goal is a displacement of 'observation' "
                                         r"\(\[2\]\), found a decision spec of shape \[3\]"):
        wide.transform_env(PointNavigationEnv(batch_size=[2]))
    missing = HeldDecision(high, Unbounded(2), every=2, goal_mode="relative",
                           goal_key="achieved_goal")
    with pytest.raises(KeyError, match=r"the goal key .+achieved_goal.+ is not in the env.+s "
                                       r"observation spec"):
        missing.transform_env(PointNavigationEnv())
    wrong = HeldDecision(TensorDictModule(lambda o: torch.zeros(o.shape[0], 5), ["observation"],
                                          [("hrl", "decision")]), Unbounded(2), every=2)
    env = wrong.transform_env(PointNavigationEnv(batch_size=[2]))
    with pytest.raises(ValueError, match=r"must fit decision_spec \[2\] per row, found \[2, 5\]"):
        wrong(env.reset())
    bad_stop = HeldDecision(high, Unbounded(2), every=2,
                            terminate=lambda td: torch.zeros(3, dtype=torch.bool))
    env = bad_stop.transform_env(PointNavigationEnv(batch_size=[2]))
    with pytest.raises(ValueError, match=r"one flag per row, \[2, 1\] or \[2\], found \[3\]"):
        bad_stop(env.reset())


def test_an_unbatched_env_works_too():
    held = HeldDecision(_CountingHigh(), Unbounded(2), every=2)
    env = held.transform_env(PointNavigationEnv(max_steps=10))
    rollout = env.rollout(4, TensorDictSequential(held, _low()))
    assert rollout["hrl", "new"].squeeze(-1).tolist() == [True, False, True, False]
    td = TensorDict({"observation": torch.zeros(2), "is_init": torch.tensor([True]),
                     "hrl": {"decision": torch.zeros(2),
                             "age": torch.zeros(1, dtype=torch.int64)}})
    assert held(td)["hrl", "decision"].tolist() == pytest.approx([0.3, 0.3])
