"""SegmentBatcher: one high-level transition per held decision, checked against a reference
computed from the whole collected stream (batched rows whose segments end at different steps,
segments across batch boundaries, episode ends), discounting, kept steps, dropped pieces,
state and bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule, TensorDictSequential

from streamrl.collectors import SyncDataCollector
from streamrl.data.specs import Unbounded
from streamrl.envs import PointNavigationEnv
from streamrl.modules import HeldDecision
from streamrl.ops import SegmentBatcher


def _collect(frames_per_batch: int, batches: int, every: int = 3):
    """Batches of a 2-row navigation env (episodes of 5 steps) under a HeldDecision that
    re-decides every ``every`` steps, and row 0 also whenever its x passes 0.15 (so the two
    rows' segments end at different steps)."""
    torch.manual_seed(0)
    high = TensorDictModule(lambda obs: torch.randn(obs.shape[0], 2) * 0.2, ["observation"],
                            [("hrl", "decision")])

    def terminate(td):
        stop = torch.zeros(td.shape[0], 1, dtype=torch.bool)
        stop[0] = bool(td["observation"][0, 0] > 0.15) and int(td["hrl", "age"][0]) > 0
        return stop

    held = HeldDecision(high, Unbounded(2), every=every, terminate=terminate)
    low = TensorDictModule(lambda g: g, [("hrl", "goal")], ["action"])
    env = held.transform_env(PointNavigationEnv(batch_size=[2], max_steps=5, tolerance=None))
    collector = SyncDataCollector(env, TensorDictSequential(held, low),
                                  frames_per_batch=frames_per_batch,
                                  total_frames=frames_per_batch * batches)
    out = list(collector)
    collector.shutdown()
    return out


def _reference(stream, gamma=1.0):
    """(row, start step, length, discounted reward, next observation) of every finished
    segment of a [rows, T] stream: from a decision to the step before the next decision or
    to a done step."""
    segments = []
    new = stream["hrl", "new"].squeeze(-1)
    done = stream["next", "done"].squeeze(-1)
    reward = stream["next", "reward"].squeeze(-1)
    rows, steps = new.shape
    for r in range(rows):
        t = 0
        while t < steps:
            assert new[r, t]
            end = t
            while not done[r, end] and end + 1 < steps and not new[r, end + 1]:
                end += 1
            if not done[r, end] and end + 1 == steps:
                break  # still running when the stream stops
            rewards = reward[r, t:end + 1]
            disc = (gamma ** torch.arange(len(rewards), dtype=rewards.dtype) * rewards).sum()
            segments.append((r, t, end - t + 1, float(disc),
                             stream["next", "observation"][r, end].tolist()))
            t = end + 1
    return segments


@pytest.mark.parametrize("per_batch", [2, 3, 8])
def test_segments_equal_those_of_the_whole_stream(per_batch):
    batches = _collect(2 * per_batch, 24 // per_batch)
    stream = torch.cat(batches, dim=1)
    op = SegmentBatcher(gamma=0.9)
    got = []
    for batch in batches:
        out = op.step({"in": batch})
        if out is not None:
            got.append(out["out"])
    got = torch.cat(got)
    expected = _reference(stream, gamma=0.9)
    assert len(got) == len(expected) == op.emitted
    lengths = sorted(e[2] for e in expected)
    assert sorted(got["hrl", "length"].flatten().tolist()) == lengths
    assert len(set(lengths)) > 1  # segments of several lengths: the cuts differ per row
    # a segment is named by its trajectory and the episode step it starts at
    by_key = {(int(stream["collector", "traj_ids"][e[0], e[1]]), int(stream["step"][e[0], e[1]])): e
              for e in expected}
    for i in range(len(got)):
        key = (int(got["collector", "traj_ids"][i]), int(got["step"][i]))
        r, t, length, reward, next_obs = by_key[key]
        assert float(got["next", "reward"][i]) == pytest.approx(reward, abs=1e-6)
        assert got["next", "observation"][i].tolist() == pytest.approx(next_obs)
        torch.testing.assert_close(got["observation"][i], stream["observation"][r, t])
        torch.testing.assert_close(got["action"][i], stream["hrl", "decision"][r, t])
        assert int(got["hrl", "length"][i]) == length
        assert bool(got["next", "done"][i]) == bool(stream["next", "done"][r, t + length - 1])


def test_kept_steps_are_padded_with_a_mask():
    batches = _collect(8, 2)
    op = SegmentBatcher(keep_steps=("observation", "action"), max_length=3)
    out = op.step({"in": batches[0]})["out"]
    steps = out["hrl", "steps"]
    assert steps["observation"].shape == (len(out), 3, 2)
    lengths = out["hrl", "length"].flatten()
    assert torch.equal(steps["mask"].sum(-1), lengths)
    first = steps["observation"][:, 0]
    torch.testing.assert_close(first, out["observation"])
    short = SegmentBatcher(keep_steps=("observation",), max_length=1)
    with pytest.raises(ValueError, match=r"a segment of [23] steps is longer than max_length=1"):
        short.step({"in": batches[0]})


def _rows(new, done, ids, reward=None):
    n = len(new)
    reward = reward if reward is not None else [1.0] * n
    return TensorDict({
        "observation": torch.arange(n, dtype=torch.float32)[:, None],
        "hrl": {"new": torch.tensor(new)[:, None], "decision": torch.zeros(n, 2)},
        "collector": {"traj_ids": torch.tensor(ids)},
        "next": {"observation": torch.arange(1, n + 1, dtype=torch.float32)[:, None],
                 "reward": torch.tensor(reward)[:, None], "done": torch.tensor(done)[:, None]},
    }, [n])


def test_pieces_without_a_decision_at_their_start_are_dropped():
    op = SegmentBatcher()
    # a stream picked up mid-segment: its first steps are not a decision's
    out = op.step({"in": _rows([False, False, True, False], [False] * 4, [0] * 4)})
    assert out is None  # the second segment is still running
    # the env was reset under the running segment (a new trajectory, no done step)
    out = op.step({"in": _rows([True, False], [False, True], [1, 1])})
    assert len(out["out"]) == 1 and out["out"]["hrl", "length"].item() == 2
    assert op.emitted == 1 and op.state_dict() == {"emitted": 1, "open": {}}


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\], found 1.5"):
        SegmentBatcher(gamma=1.5)
    with pytest.raises(ValueError, match="keep_steps needs max_length"):
        SegmentBatcher(keep_steps=("observation",))
    op = SegmentBatcher()
    with pytest.raises(KeyError, match=r"needs .*hrl.*new.* in its input"):
        op.step({"in": _rows([True], [False], [0]).exclude(("hrl", "new"))})
    with pytest.raises(TypeError, match=r"expects \[\*envs, T\] TensorDicts, found Tensor"):
        op.step({"in": torch.zeros(3)})


def test_a_restored_batcher_finishes_the_open_segments():
    batches = _collect(4, 6)
    straight = SegmentBatcher()
    outs = [straight.step({"in": b}) for b in batches]
    first = SegmentBatcher()
    for b in batches[:3]:
        first.step({"in": b})
    state = first.state_dict()
    assert state["open"]  # segments still running at the cut
    restored = SegmentBatcher()
    restored.load_state_dict(state)
    for b, expected in zip(batches[3:], outs[3:]):
        got = restored.step({"in": b})
        assert (got is None) == (expected is None)
        if got is not None:
            torch.testing.assert_close(got["out"], expected["out"])
    assert restored.emitted == straight.emitted
