"""GymEnv / GymWrapper: layout, specs, seeding, frame_skip, pixels, errors, contract."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from streamrl.data import Bounded, Categorical, OneHot
from streamrl.envs import EnvClosedError, step_mdp
from streamrl.envs.libs.gym import GymEnv, GymWrapper
from streamrl.testing import EnvContractTests


class TestPendulumContract(EnvContractTests):
    def make_env(self):
        return GymEnv("Pendulum-v1")


class TestCartPoleContract(EnvContractTests):
    def make_env(self):
        return GymEnv("CartPole-v1")


class TestCartPoleOneHotContract(EnvContractTests):
    def make_env(self):
        return GymEnv("CartPole-v1", categorical_action_encoding=False)


class TestPixelsContract(EnvContractTests):
    steps = 2
    stepping_steps = 6  # rendering 500x500 frames is slow; Pendulum never ends early anyway

    def make_env(self):
        return GymEnv("Pendulum-v1", from_pixels=True, pixels_only=True)


class TestWrapperContract(EnvContractTests):
    def make_env(self):
        return GymWrapper(gym.make("MountainCar-v0", max_episode_steps=15))


class TestTupleObservationContract(EnvContractTests):
    # nested observations: the generic stepping path (no numpy fast path)
    def make_env(self):
        return GymEnv("Blackjack-v1")


def test_layout_matches_seed():
    env = GymEnv("Pendulum-v1")
    assert repr(env) == "GymEnv(env=Pendulum-v1, batch_size=torch.Size([]), device=None)"
    td = env.rand_step(env.reset())
    assert set(td.keys()) == {"action", "done", "terminated", "truncated", "observation", "next"}
    assert set(td["next"].keys()) == {"done", "observation", "reward", "terminated", "truncated"}
    assert td["action"].shape == (1,) and td["observation"].shape == (3,)
    assert td["next", "reward"].dtype == torch.float32 and td["next", "reward"].shape == (1,)
    for k in ("done", "terminated", "truncated"):
        assert td[k].dtype == torch.bool and td[k].shape == (1,)
    assert td.device is None
    assert isinstance(env.action_spec, Bounded)
    assert env.action_spec.high.item() == 2.0
    assert env.done_spec.keys() == ["done", "terminated", "truncated"]
    env.close()


def test_wrapper_of_made_env_matches_gymenv():
    a = GymWrapper(gym.make("Pendulum-v1"))
    b = GymEnv("Pendulum-v1")
    assert repr(a) == "GymWrapper(env=Pendulum-v1, batch_size=torch.Size([]), device=None)"
    a.set_seed(3)
    b.set_seed(3)
    torch.manual_seed(0)
    ra = a.rollout(10)
    torch.manual_seed(0)
    rb = b.rollout(10)
    assert (ra == rb).all()


@pytest.mark.parametrize("categorical", [False, True])
def test_values_match_raw_gymnasium(categorical):
    env = GymEnv("CartPole-v1", categorical_action_encoding=categorical)
    env.set_seed(1)
    td = env.reset()
    raw = gym.make("CartPole-v1")
    obs, _ = raw.reset(seed=1)
    np.testing.assert_array_equal(td["observation"].numpy(), obs)
    for a in [0, 1, 1, 0, 1]:
        td["action"] = torch.tensor(a) if categorical else torch.eye(2, dtype=torch.long)[a]
        td = env.step(td)
        obs, r, term, _, _ = raw.step(a)
        np.testing.assert_array_equal(td["next", "observation"].numpy(), obs)
        assert td["next", "reward"].item() == r
        assert td["next", "terminated"].item() == term
        td = step_mdp(td)


def test_terminated_vs_truncated():
    env = GymEnv("CartPole-v1", max_episode_steps=5)
    env.set_seed(0)
    td = env.rollout(10, policy=lambda td: td.set("action", torch.tensor([1, 0])))
    # pushing left forever terminates (pole falls) or truncates at 5 steps
    last = td[-1]["next"]
    assert last["done"].item()
    assert td.shape[0] <= 5
    if td.shape[0] == 5 and not last["terminated"].item():
        assert last["truncated"].item()
    env2 = GymEnv("Pendulum-v1", max_episode_steps=3)
    r = env2.rollout(10)
    assert r.shape == (3,)
    assert r["next", "truncated"][-1].item() and not r["next", "terminated"].any()


def test_discrete_action_encodings():
    # one-hot by default, as in TorchRL
    oh = GymEnv("CartPole-v1")
    assert isinstance(oh.action_spec, OneHot) and oh.action_spec.shape == (2,)
    assert oh.rollout(3)["action"].sum(-1).eq(1).all()
    cat = GymEnv("CartPole-v1", categorical_action_encoding=True)
    assert isinstance(cat.action_spec, Categorical) and cat.action_spec.shape == ()
    cat.set_seed(0)
    oh.set_seed(0)
    tc, to = cat.reset(), oh.reset()
    tc["action"] = torch.tensor(1)
    to["action"] = torch.tensor([0, 1])
    assert torch.equal(cat.step(tc)["next", "observation"], oh.step(to)["next", "observation"])


def test_frame_skip_sums_rewards_and_stops_at_done():
    env = GymEnv("Pendulum-v1", frame_skip=3)
    raw = gym.make("Pendulum-v1")
    env.set_seed(0)
    env.reset()
    raw.reset(seed=0)
    td = env.reset()
    raw.reset(seed=None)
    env.set_seed(5)
    td = env.reset()
    raw.reset(seed=5)
    td["action"] = torch.tensor([0.5])
    td = env.step(td)
    total = sum(raw.step(np.array([0.5], np.float32))[1] for _ in range(3))
    assert td["next", "reward"].item() == pytest.approx(total, rel=1e-5)
    short = GymEnv("Pendulum-v1", frame_skip=4, max_episode_steps=6)
    r = short.rollout(10)
    assert r.shape == (2,)  # 4 frames, then 2 frames before truncation
    assert r["next", "truncated"][-1].item()


def test_from_pixels_seed_layout():
    env = GymEnv("Pendulum-v1", frame_skip=3, from_pixels=True, pixels_only=False)
    td = env.reset()
    assert set(td.keys()) == {"done", "observation", "pixels", "terminated", "truncated"}
    assert td["pixels"].shape == (500, 500, 3) and td["pixels"].dtype == torch.uint8
    assert td["pixels"].max() > 0
    r = env.rollout(2)
    assert r["next", "pixels"].shape == (2, 500, 500, 3)
    env.close()
    only = GymEnv("Pendulum-v1", from_pixels=True)
    assert "observation" not in only.reset().keys()
    only.close()


def test_info_keys():
    env = GymEnv("CliffWalking-v1", info_keys=["prob"])
    td = env.rand_step(env.reset())
    spec = env.observation_spec["prob"]  # read from the reset info (an int there)
    assert td["next", "prob"].dtype == spec.dtype == td["prob"].dtype
    assert td["next", "prob"].item() == 1
    with pytest.raises(KeyError, match="nope"):
        GymEnv("CartPole-v1", info_keys=["nope"])


def test_other_registered_ids():
    ids = ["MountainCar-v0", "Acrobot-v1", "MountainCarContinuous-v0", "FrozenLake-v1"]
    for name in [*ids, "Blackjack-v1", "Taxi-v4", "CliffWalking-v1"]:
        with GymEnv(name) as env:
            r = env.rollout(4, break_when_any_done=False)
            assert r.shape == (4,)
            assert env.action_spec.is_in(r["action"][0])


def test_bad_input_errors():
    with pytest.raises(ValueError, match="NoSuchEnv"):
        GymEnv("NoSuchEnv-v0")
    with pytest.raises(TypeError, match=r"gymnasium\.Env"):
        GymWrapper("CartPole-v1")
    with pytest.raises(ValueError, match="render_mode"):
        GymWrapper(gym.make("Pendulum-v1"), from_pixels=True)
    with pytest.raises(ValueError, match="frame_skip"):
        GymEnv("Pendulum-v1", frame_skip=0)
    strict = GymEnv("Pendulum-v1", strict_action_bounds=True)
    td = strict.reset()
    td["action"] = torch.tensor([3.0])
    with pytest.raises(ValueError, match="out of the action spec"):
        strict.step(td)
    env = GymEnv("Pendulum-v1")
    td = env.reset()
    td["action"] = torch.tensor([float("nan")])
    with pytest.raises(ValueError, match="non-finite"):
        env.step(td)
    td["action"] = torch.tensor([1.0], dtype=torch.float64)
    with pytest.raises(TypeError, match=r"dtype torch\.float32"):
        env.step(td)
    td = env.reset()
    td["action"] = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="shape"):
        env.step(td)
    with pytest.raises(KeyError, match="action"):
        env.step(env.reset())
    with pytest.raises(ValueError, match="batch_size"):
        env.step(TensorDict({"action": torch.zeros(2, 1)}, [2]))
    cart = GymEnv("CartPole-v1", categorical_action_encoding=True)
    td = cart.reset()
    td["action"] = torch.tensor(2)
    with pytest.raises(ValueError, match="out of the action spec"):
        cart.step(td)
    with pytest.raises(ValueError, match="max_steps"):
        cart.rollout(0)
    with pytest.raises(ValueError, match="tensordict"):
        cart.rollout(3, auto_reset=False)


def test_closed_env_errors_and_context_manager():
    with GymEnv("CartPole-v1") as env:
        td = env.reset()
    assert env.is_closed
    with pytest.raises(EnvClosedError, match="closed"):
        env.rand_step(td)
    with pytest.raises(EnvClosedError):
        env.rollout(3)
    with pytest.raises(EnvClosedError):
        env.set_seed(0)


def test_fast_and_generic_rollouts_agree():
    env = GymEnv("CartPole-v1")
    for stop in (True, False):
        env.set_seed(0)
        torch.manual_seed(0)
        fast = env.rollout(60, break_when_any_done=stop)
        actions = iter(fast["action"])
        env.set_seed(0)
        generic = env.rollout(
            60,
            policy=lambda td, it=actions: td.set("action", next(it)),
            break_when_any_done=stop,
        )
        assert fast.shape == generic.shape
        assert (fast == generic).all()
        if not stop:
            assert fast["next", "done"].any()  # crossed a reset


def test_rollout_resets_done_env_and_next_root_is_reset_obs():
    env = GymEnv("CartPole-v1")
    env.set_seed(0)
    r = env.rollout(100, break_when_any_done=False)
    done = r["next", "done"].squeeze(-1)
    t = int(done.nonzero()[0])
    assert not torch.equal(r["observation"][t + 1], r["next", "observation"][t])
    assert not r["done"][t + 1].item()
    assert (r["observation"][t + 1].abs() <= 0.05).all()  # CartPole resets near zero


def test_out_of_bounds_continuous_action_reaches_env_by_default():
    # the seed tutorial drives Pendulum with an unbounded Linear actor: gymnasium clips
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    td = env.reset()
    td["action"] = torch.tensor([50.0])
    big = env.step(td)["next"].clone()
    env.set_seed(0)
    td = env.reset()
    td["action"] = torch.tensor([2.0])
    assert torch.equal(env.step(td)["next", "observation"], big["observation"])


@pytest.mark.parametrize("policy", [None, "rand"])
def test_set_truncated_marks_last_step(policy):
    env = GymEnv("Pendulum-v1")
    pol = env.rand_action if policy else None
    r = env.rollout(5, policy=pol, set_truncated=True)
    assert r["next", "truncated"].flatten().tolist() == [False] * 4 + [True]
    assert r["next", "done"][-1].item() and not r["next", "terminated"].any()
    plain = env.rollout(5, policy=pol)
    assert not plain["next", "truncated"].any()


class SpacesEnv(gym.Env):
    """A gymnasium env with Dict/Tuple observations and configurable action spaces; it
    records the actions it receives."""

    def __init__(self, action_space, obs="dict"):
        self.action_space = action_space
        box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        if obs == "dict":
            self.observation_space = gym.spaces.Dict(
                pos=box, inner=gym.spaces.Dict(flag=gym.spaces.MultiBinary(2))
            )
        else:
            self.observation_space = gym.spaces.Tuple([box, gym.spaces.Discrete(3)])
        self.received = []

    def _obs(self):
        return self.observation_space.sample()

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self._obs(), {}

    def step(self, action):
        self.received.append(action)
        return self._obs(), 1.0, False, len(self.received) >= 3, {}


def test_dict_and_tuple_observations():
    env = GymWrapper(SpacesEnv(gym.spaces.Discrete(2)))
    td = env.rand_step(env.reset())
    assert set(env.observation_spec.keys(True, True)) == {"pos", ("inner", "flag")}
    assert td["next", "pos"].shape == (2,) and td["next", "inner", "flag"].dtype == torch.int8
    r = env.rollout(5, break_when_any_done=False)
    assert r["next", "inner", "flag"].shape == (5, 2)
    tup = GymWrapper(SpacesEnv(gym.spaces.Discrete(2), obs="tuple"))
    td = tup.rand_step(tup.reset())
    assert td["next", "observation", "0"].shape == (2,)
    assert td["next", "observation", "1"].shape == ()


def test_action_space_offsets_and_multi_actions():
    start = GymWrapper(SpacesEnv(gym.spaces.Discrete(3, start=5)), categorical_action_encoding=True)
    td = start.reset()
    td["action"] = torch.tensor(2)
    start.step(td)
    assert start._env.received == [7]
    onehot = GymWrapper(SpacesEnv(gym.spaces.Discrete(3, start=-1)))
    td = onehot.reset()
    td["action"] = torch.tensor([0, 0, 1])
    onehot.step(td)
    assert onehot._env.received == [1]
    multi = GymWrapper(SpacesEnv(gym.spaces.MultiDiscrete([2, 4])), categorical_action_encoding=True)
    td = multi.reset()
    td["action"] = torch.tensor([1, 3])
    multi.step(td)
    assert multi._env.received[0].tolist() == [1, 3]
    td["action"] = torch.tensor([1, 4])
    with pytest.raises(ValueError, match="out of the action spec"):
        multi.step(td)
    binary = GymWrapper(SpacesEnv(gym.spaces.MultiBinary(3)))
    r = binary.rollout(3)
    assert r["action"].dtype == torch.int8 and len(binary._env.received) == 3
    assert binary.action_spec.is_in(r["action"])


def test_step_keeps_entries_preset_under_next():
    env = GymEnv("Pendulum-v1")
    td = env.rand_action(env.reset())
    td["next"] = TensorDict({"hidden": torch.ones(4), "observation": torch.zeros(3)}, [])
    out = env.step(td)["next"]
    assert torch.equal(out["hidden"], torch.ones(4))  # the policy's entry survives
    assert not torch.equal(out["observation"], torch.zeros(3))  # the env's entry wins

    def recurrent(td):  # reads its state at the root, writes the next one under "next"
        h = td.get("h", torch.zeros(1))
        return env.rand_action(td).set("h", h).set(("next", "h"), h + 1)

    r = env.rollout(3, policy=recurrent)
    assert r["next", "h"].flatten().tolist() == [1.0, 2.0, 3.0]
    assert r["h"].flatten().tolist() == [0.0, 1.0, 2.0]


def test_explicit_device():
    env = GymEnv("CartPole-v1", device="cpu")
    assert env.device == torch.device("cpu")
    td = env.reset()
    assert td.device == torch.device("cpu")
    assert env.rand_step(td)["next"].device == torch.device("cpu")
    assert env.rollout(5, break_when_any_done=False).device == torch.device("cpu")
    assert env.rollout(5, policy=env.rand_action).device == torch.device("cpu")
    assert GymEnv("CartPole-v1").reset().device is None
