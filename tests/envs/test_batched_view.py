"""``SerialEnv[...]`` / ``ParallelEnv[...]``: views over some of the sub-envs (TorchRL's
batched-env indexing)."""

import pickle

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import Bounded, Composite, Unbounded
from streamrl.envs import EnvBase, EnvClosedError, ParallelEnv, SerialEnv
from streamrl.envs.batched_view import select_rows


class Counter(EnvBase):
    """Observation: how many steps this sub-env took since it was built (reset keeps it);
    ``seed`` records its seed."""

    def __init__(self):
        super().__init__()
        self.observation_spec = Composite(observation=Unbounded((1,)))
        self.action_spec = Bounded(-1.0, 1.0, (1,))
        self.count, self.seed = 0, None

    def _obs(self):
        return torch.full((1,), float(self.count))

    def _set_seed(self, seed):
        self.seed = seed

    def _reset(self, td):
        return TensorDict({"observation": self._obs()}, [])

    def _capture_state(self):
        return self.count

    def _check_state(self, state):
        if not isinstance(state, int):
            raise ValueError(f"expected an int count, found {state!r}")

    def _restore_state(self, state):
        self.count = state

    def _step(self, td):
        self.count += 1
        done = torch.zeros(1, dtype=torch.bool)
        return TensorDict(
            {"observation": self._obs(), "reward": torch.ones(1), "done": done,
             "terminated": done.clone(), "truncated": done.clone()},
            [],
        )


@pytest.fixture(params=[SerialEnv, ParallelEnv], ids=["serial", "parallel"])
def env(request):
    env = request.param(3, Counter)
    yield env
    env.close()


def counts(env):
    return env.reset()["observation"].flatten().tolist()


@pytest.mark.parametrize(
    "index, rows",
    [(1, [1]), (-1, [2]), ((0,), [0]), (slice(0, 2), [0, 1]), ([2, 0], [2, 0]),
     (torch.tensor([1, 2]), [1, 2]), (torch.tensor([True, False, True]), [0, 2]),
     ([False, True, False], [1])],
)
def test_select_rows(index, rows):
    assert select_rows(index, 3) == rows


@pytest.mark.parametrize(
    "index, error, match",
    [(3, IndexError, "out of range"), (-4, IndexError, "out of range"),
     ((0, 1), IndexError, "first dim"), ("a", TypeError, "found str"),
     (1.0, TypeError, "found float"), ([0, 0], ValueError, "twice"),
     (slice(2, 2), ValueError, "no sub-env"), ([True, False], IndexError, "mask of 3"),
     (torch.tensor([0.5]), TypeError, "float"), (True, TypeError, "found bool")],
)
def test_select_rows_refuses_bad_indices(index, error, match):
    with pytest.raises(error, match=match):
        select_rows(index, 3)


def test_view_is_the_same_class_over_the_same_sub_envs(env):
    env.rand_step(env.reset())  # every sub-env took a step
    view = env[[2, 0]]
    assert type(env) in type(view).__mro__ and view.num_workers == 2
    assert view.batch_size == (2,) and view.action_spec.shape == (2, 1)
    view.rand_step(view.reset())
    view.rand_step(view.reset())
    # the view moved the parent's sub-envs 2 and 0 (not copies)
    assert counts(env) == [3.0, 1.0, 3.0]
    assert counts(view) == [3.0, 3.0]
    out = view.rollout(4, break_when_any_done=False)
    assert out.batch_size == (2, 4)
    assert out["next", "observation"][:, -1].flatten().tolist() == [7.0, 7.0]
    assert counts(env) == [7.0, 1.0, 7.0]


def test_view_partial_reset_and_parent_root(env):
    view = env[1:]
    td = view.reset(TensorDict({"_reset": torch.tensor([[False], [True]])}, [2]))
    assert td["observation"].flatten().tolist() == [0.0, 0.0]
    env.rand_step(env.reset())
    assert view.reset()["observation"].flatten().tolist() == [1.0, 1.0]


def test_view_seeds_its_sub_envs(env):
    view = env[1:]
    assert view.set_seed(10) == 12
    if isinstance(env, SerialEnv):
        assert [e.seed for e in env._envs] == [None, 10, 11]
    env.set_seed(0)  # the parent re-seeds them all


def test_view_of_a_view_and_state(env):
    view = env[1:][1]
    assert view.batch_size == (1,)
    view.rand_step(view.reset())
    assert counts(env) == [0.0, 0.0, 1.0]
    state = view.capture_state()
    view.rand_step(view.reset())
    assert counts(env) == [0.0, 0.0, 2.0]
    view.restore_state(state)
    assert counts(env) == [0.0, 0.0, 1.0]
    assert "view of sub-envs [2]" in repr(view)


def test_closing_a_view_leaves_the_parent_open(env):
    view = env[0]
    view.reset()
    view.close()
    view.close()
    with pytest.raises(EnvClosedError, match="view"):
        view.reset()
    assert counts(env) == [0.0, 0.0, 0.0]


def test_closing_the_parent_closes_its_views(env):
    view = env[0:2]
    view.reset()
    env.close()
    with pytest.raises(EnvClosedError, match="closed"):
        view.rand_step(view.reset())
    with pytest.raises(EnvClosedError):
        env[0]


def test_view_cannot_be_pickled(env):
    with pytest.raises(TypeError, match="view"):
        pickle.dumps(env[0])
