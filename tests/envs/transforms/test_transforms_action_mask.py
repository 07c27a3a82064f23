"""ActionMask: the action spec's mask follows the env's mask entry (reset, step, batched,
outside a SerialEnv), random actions stay legal, bad input."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from streamrl.data.specs import Categorical, Composite, OneHot
from streamrl.envs import SerialEnv
from streamrl.envs.common import EnvBase
from streamrl.envs.transforms import ActionMask, TransformedEnv
from streamrl.envs.utils import check_env_specs


class NoRepeatEnv(EnvBase):
    """n actions; after taking action a, the mask forbids a (all legal after reset)."""

    def __init__(self, batch_size=(), n: int = 3, one_hot: bool = False) -> None:
        super().__init__(batch_size=batch_size)
        b = self.batch_size
        self.n = n
        self.one_hot = one_hot
        self.action_spec = OneHot(n, shape=(*b, n)) if one_hot else Categorical(n, shape=b)
        mask = Categorical(2, shape=(*b, n), dtype=torch.bool)
        self.full_observation_spec = Composite(action_mask=mask, shape=b)

    def _reset(self, tensordict=None, **kwargs):
        return TensorDict(
            {"action_mask": torch.ones(*self.batch_size, self.n, dtype=torch.bool)}, self.batch_size
        )

    def _step(self, tensordict):
        a = tensordict.get("action")
        if self.one_hot:
            a = a.long().argmax(-1)
        if not bool(tensordict.get("action_mask").gather(-1, a.unsqueeze(-1)).all()):
            raise AssertionError("illegal action taken")
        mask = torch.ones(*self.batch_size, self.n, dtype=torch.bool)
        mask.scatter_(-1, a.unsqueeze(-1), False)
        flag = torch.zeros(*self.batch_size, 1, dtype=torch.bool)
        return TensorDict(
            {"action_mask": mask, "reward": torch.zeros(*self.batch_size, 1),
             "done": flag, "terminated": flag.clone(), "truncated": flag.clone()},
            self.batch_size,
        )  # fmt: skip

    def _set_seed(self, seed):
        pass


@pytest.mark.parametrize("batch_size", [(), (4,)])
@pytest.mark.parametrize("one_hot", [False, True])
def test_random_actions_respect_the_mask(batch_size, one_hot):
    env = TransformedEnv(NoRepeatEnv(batch_size, one_hot=one_hot), ActionMask())
    torch.manual_seed(0)
    roll = env.rollout(20)  # NoRepeatEnv raises on an illegal action
    assert roll["next", "action_mask"].shape[-1] == 3
    actions = roll["action"].long().argmax(-1) if one_hot else roll["action"]
    assert not bool((actions[..., 1:] == actions[..., :-1]).any())
    check_env_specs(env)
    env.close()


def test_mask_after_reset_and_outside_serial_env():
    env = TransformedEnv(SerialEnv(2, lambda: NoRepeatEnv()), ActionMask())
    try:
        td = env.reset()
        assert env.action_spec.mask is None  # everything legal: no restriction
        td["action"] = torch.tensor([0, 2])
        env.step(td)
        assert env.action_spec.mask.tolist() == [[False, True, True], [True, True, False]]
        env.reset()
        assert env.action_spec.mask is None
        env.rollout(10)
    finally:
        env.close()


def test_action_mask_bad_input(counting_env):
    env = TransformedEnv(counting_env(), ActionMask())
    with pytest.raises(TypeError, match="discrete"):
        env.reset()
    env = TransformedEnv(NoRepeatEnv(), ActionMask(action_key="act"))
    with pytest.raises(KeyError, match="no action 'act'"):
        env.reset()
    env = TransformedEnv(NoRepeatEnv(), ActionMask(mask_key="legal"))
    with pytest.raises(KeyError, match="legal"):
        env.reset()
    with pytest.raises(ValueError, match="one key"):
        ActionMask(mask_key=["a", "b"])
    td = TensorDict({"action_mask": torch.ones(3, dtype=torch.bool)})
    assert ActionMask()(td) is td


def test_no_buffered_rollout_with_a_live_mask(counting_env):
    env = TransformedEnv(NoRepeatEnv((2,)), ActionMask())
    assert env.step_buffers(4) is None  # random actions drawn step by step
    plain = TransformedEnv(counting_env())
    assert plain.step_buffers(4) is not None


def test_a_row_allowing_nothing_is_left_unrestricted():
    # an agent that does not act this step reports no legal action: its row stays samplable
    env = TransformedEnv(NoRepeatEnv((2,), n=2), ActionMask())
    td = env.reset()
    td["action"] = torch.tensor([0, 1])
    env.step(td)
    transform = env.transform[0]
    transform._update(TensorDict({"action_mask": torch.tensor([[False, True], [False, False]])},
                                 [2]))
    assert env.action_spec.mask.tolist() == [[False, True], [True, True]]
    transform._update(TensorDict({"action_mask": torch.zeros(2, 2, dtype=torch.bool)}, [2]))
    assert env.action_spec.mask is None
    draws = torch.stack([env.action_spec.rand() for _ in range(50)])
    assert set(draws.flatten().tolist()) == {0, 1}
