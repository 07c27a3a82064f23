"""terminated_or_truncated and make_tensordict (streamrl.envs.utils, as TorchRL documents)."""

import pytest
import torch
from tensordict import TensorDict

from streamrl.data.specs import Categorical, Composite
from streamrl.envs import GymEnv, make_tensordict, terminated_or_truncated


def _nested(done, truncated, ndone, ntrunc):
    return TensorDict(
        {"done": torch.tensor([done]), "truncated": torch.tensor([truncated]),
         "nested": {"done": torch.tensor([ndone]), "truncated": torch.tensor([ntrunc])}},
        batch_size=[],
    )


def _spec():
    leaf = lambda: Categorical(2, shape=(1,), dtype=torch.bool)  # noqa: E731
    return Composite(done=leaf(), truncated=leaf(), nested=Composite(done=leaf(), truncated=leaf()))


@pytest.mark.parametrize("use_spec", [False, True])
def test_writes_the_or_of_each_level(use_spec):
    data = _nested(True, False, False, True)
    assert terminated_or_truncated(data, _spec() if use_spec else None) is True
    assert data["_reset"].tolist() == [True] and data["nested", "_reset"].tolist() == [True]
    data = _nested(False, False, False, True)
    assert terminated_or_truncated(data, _spec() if use_spec else None, key="r") is True
    assert "r" not in data.keys() and data["nested", "r"].tolist() == [True]


def test_all_false_writes_only_with_write_full_false():
    data = _nested(False, False, False, False)
    assert terminated_or_truncated(data) is False
    assert "_reset" not in data.keys()
    assert terminated_or_truncated(data, write_full_false=True) is False
    assert data["_reset"].tolist() == [False] and data["nested", "_reset"].tolist() == [False]


def test_key_none_writes_nothing_and_present_entries_are_kept():
    data = _nested(True, False, False, False)
    assert terminated_or_truncated(data, key=None) is True
    assert "_reset" not in data.keys()
    data.set("_reset", torch.tensor([False]))
    terminated_or_truncated(data)
    assert data["_reset"].tolist() == [False]


def test_batched_flags_keep_their_shape_and_next_is_ignored():
    data = TensorDict({"done": torch.tensor([[False], [True], [False]]),
                       "terminated": torch.tensor([[False], [False], [True]]),
                       "next": {"done": torch.ones(3, 1, dtype=torch.bool)}}, batch_size=[3])
    assert terminated_or_truncated(data)
    assert data["_reset"].squeeze(-1).tolist() == [False, True, True]
    assert "_reset" not in data["next"].keys()


def test_bad_input():
    with pytest.raises(TypeError, match="needs a TensorDict"):
        terminated_or_truncated({"done": torch.tensor(True)})
    with pytest.raises(TypeError, match="full_done_spec must be a Composite"):
        terminated_or_truncated(_nested(True, False, False, False), Categorical(2))
    with pytest.raises(TypeError, match="key must be"):
        terminated_or_truncated(_nested(True, False, False, False), key=3)


def test_make_tensordict_is_a_zeroed_full_step():
    env = GymEnv("CartPole-v1")
    try:
        td = make_tensordict(env)
        step = env.rand_step(env.reset())
        assert set(td.keys(True, True)) == set(step.keys(True, True))
        assert all((td.get(k) == 0).all() for k in td.keys(True, True))
        seen = []
        def policy(t):
            seen.append(True)
            return t.set("action", env.action_spec.rand())
        td = make_tensordict(env, policy)
        assert seen == [True] and td["action"].shape == env.action_spec.shape
    finally:
        env.close()
