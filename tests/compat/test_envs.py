"""Compatibility with TorchRL 0.14's env core (torchrl.envs, .common, .batched_envs,
.env_creator, .utils, .libs.gym, .libs.dm_control, .libs.pettingzoo, .libs.vmas, .custom):
every name listed here imports from the same path under ``streamrl`` and its documented
constructor and main method work.
Names of these modules that streamrl does not provide are listed in
docs/torchrl_differences.md."""

import importlib
import pickle

import pytest
import torch

PROVIDED = {
    "torchrl.envs": [
        "EnvBase", "EnvCreator", "GymEnv", "GymWrapper", "ParallelEnv", "PendulumEnv",
        "SerialEnv", "check_env_specs", "exploration_type", "ExplorationType", "gym_backend",
        "make_composite_from_td", "set_exploration_type", "set_gym_backend", "step_mdp",
        "make_tensordict", "terminated_or_truncated", "default_info_dict_reader",
        "BaseInfoDictReader", "DMControlEnv", "DMControlWrapper", "MarlGroupMapType",
        "check_marl_grouping", "PettingZooEnv", "PettingZooWrapper", "VmasEnv", "VmasWrapper",
    ],
    "torchrl.envs.gym_like": ["default_info_dict_reader", "BaseInfoDictReader"],
    "torchrl.envs.common": ["EnvBase"],
    "torchrl.envs.batched_envs": ["ParallelEnv", "SerialEnv"],
    "torchrl.envs.env_creator": ["EnvCreator"],
    "torchrl.envs.utils": [
        "ExplorationType", "check_env_specs", "exploration_type", "make_composite_from_td",
        "set_exploration_type", "step_mdp", "make_tensordict", "terminated_or_truncated",
        "MarlGroupMapType", "check_marl_grouping",
    ],
    "torchrl.envs.libs": ["GymEnv", "GymWrapper", "gym_backend", "set_gym_backend",
                          "DMControlEnv", "DMControlWrapper", "PettingZooEnv",
                          "PettingZooWrapper", "VmasEnv", "VmasWrapper"],
    "torchrl.envs.libs.gym": ["GymEnv", "GymWrapper"],
    "torchrl.envs.libs.dm_control": ["DMControlEnv", "DMControlWrapper"],
    "torchrl.envs.libs.pettingzoo": ["PettingZooEnv", "PettingZooWrapper"],
    "torchrl.envs.libs.vmas": ["VmasEnv", "VmasWrapper"],
    "torchrl.envs.custom": ["PendulumEnv"],
    "torchrl.envs.custom.pendulum": ["PendulumEnv"],
}


@pytest.mark.parametrize("path", sorted(PROVIDED))
def test_names_import_from_the_same_path(path):
    module = importlib.import_module(path.replace("torchrl", "streamrl", 1))
    for name in PROVIDED[path]:
        obj = getattr(module, name)
        assert obj.__doc__, f"{path}.{name} has no docstring"
        # one object whichever path it is imported from
        assert obj is getattr(importlib.import_module("streamrl.envs"), name)


def test_gym_env_documented_arguments_and_rollout():
    from streamrl.envs.libs.gym import GymEnv

    with GymEnv("Pendulum-v1", categorical_action_encoding=False, frame_skip=2,
                device="cpu") as env:
        env.set_seed(0)
        td = env.rollout(3)
        assert td["next", "observation"].shape == (3, 3)
        assert env.spec.id == "Pendulum-v1"  # gymnasium attribute
    assert "Pendulum-v1" in GymEnv.available_envs


def test_dm_control_documented_arguments_and_rollout():
    pytest.importorskip("dm_control")  # finds it without importing mujoco
    from streamrl.envs import DMControlEnv
    from streamrl.envs.libs.dm_control import DMControlWrapper

    # TorchRL's docstring example (from_pixels, frame_skip), with smaller frames
    with DMControlEnv(env_name="cheetah", task_name="run", from_pixels=True, frame_skip=4,
                      device="cpu", render_kwargs={"height": 24, "width": 32}) as env:
        td = env.rand_step(env.reset())
        assert td["action"].shape == (6,) and td["action"].dtype == torch.float64
        nxt = td["next"]
        assert nxt["pixels"].shape == (24, 32, 3) and nxt["pixels"].dtype == torch.uint8
        assert nxt["position"].shape == (8,) and nxt["velocity"].shape == (9,)
        assert nxt["reward"].dtype == torch.float64
        assert set(nxt.keys()) >= {"done", "terminated", "truncated"}
    assert ("cheetah", ["run"]) in DMControlEnv.available_envs
    # imported only now: the env above chose MuJoCo's headless backend before its import
    from dm_control import suite

    with DMControlWrapper(suite.load("cartpole", "balance"), frame_skip=2,
                          pixels_only=False, batch_size=()) as env:
        env.set_seed(0)
        assert env.rollout(3).batch_size == (3,)


def test_pettingzoo_documented_examples():
    pytest.importorskip("pettingzoo")
    simple_spread_v3 = pytest.importorskip("mpe2.simple_spread_v3")
    from streamrl.envs.libs.pettingzoo import PettingZooEnv, PettingZooWrapper
    from streamrl.envs.utils import MarlGroupMapType

    # the docstrings' examples (an MPE task for the parallel one: pistonball needs pymunk)
    env = PettingZooWrapper(env=simple_spread_v3.parallel_env(max_cycles=5),
                            return_state=True, group_map=None)
    assert env.group_map == {"agent": ["agent_0", "agent_1", "agent_2"]}
    assert env.rollout(10).batch_size == (5,)
    env.close()
    env = PettingZooEnv(task="simple_spread_v3", parallel=True, return_state=True,
                        group_map=MarlGroupMapType.ALL_IN_ONE_GROUP, max_cycles=5)
    assert env.group_map == {"agents": ["agent_0", "agent_1", "agent_2"]}
    td = env.rand_action(env.reset())
    assert td["agents", "action"].shape == (3,) and td["state"].shape == (54,)
    env.close()
    try:
        from pettingzoo.classic import tictactoe_v3  # noqa: F401
    except ImportError:
        return
    env = PettingZooEnv(task="tictactoe_v3", parallel=False, use_mask=True, group_map=None)
    assert env.group_map == {"player_1": ["player_1"], "player_2": ["player_2"]}
    td = env.rollout(10)
    assert td["player_1", "action_mask"].shape[-2:] == (1, 9)
    env.close()


def test_batched_envs_documented_arguments():
    from streamrl.envs.batched_envs import ParallelEnv, SerialEnv
    from streamrl.envs.libs.gym import GymEnv

    def make():
        return GymEnv("CartPole-v1")

    with SerialEnv(2, make, create_env_kwargs={}) as env:
        assert env.rollout(2).batch_size == (2, 2)
    with ParallelEnv(2, make, create_env_kwargs=[{}, {}], pin_memory=False,
                     serial_for_single=False, mp_start_method="fork") as env:
        assert env.set_seed(0) == 2
        assert env.rollout(2).batch_size == (2, 2)
    single = ParallelEnv(1, make, serial_for_single=True)
    assert isinstance(single, SerialEnv)
    single.close()


def test_batched_envs_torchrl_014_keyword_arguments_and_indexing():
    from streamrl.envs.batched_envs import ParallelEnv, SerialEnv
    from streamrl.envs.libs.gym import GymEnv

    def make():
        return GymEnv("CartPole-v1")

    with SerialEnv(3, make, pin_memory=False, allow_step_when_done=False) as env:
        view = env[1:]
        assert isinstance(view, SerialEnv) and view.rollout(2).batch_size == (2, 2)
    with ParallelEnv(3, make, num_sub_threads=1, daemon=True, shutdown_timeout=5.0,
                     allow_step_when_done=False) as env:
        view = env[0]
        assert isinstance(view, ParallelEnv) and view.rollout(2).batch_size == (1, 2)
        view.close()
        assert env.rollout(2).batch_size == (3, 2)
    for cls in (SerialEnv, ParallelEnv):
        with pytest.raises(ValueError, match="pin_memory"):
            cls(2, make, pin_memory=True)


def test_make_composite_from_td_documented_example():
    from tensordict import TensorDict

    from streamrl.data import Composite, Unbounded
    from streamrl.envs.utils import make_composite_from_td

    data = TensorDict({
        "obs": torch.randn(3),
        "action": torch.zeros(2, dtype=torch.int),
        "next": {"obs": torch.randn(3), "reward": torch.randn(1)},
    }, [])
    spec = make_composite_from_td(data)
    assert isinstance(spec, Composite) and isinstance(spec["next"], Composite)
    assert isinstance(spec["action"], Unbounded) and spec["action"].dtype == torch.int32
    assert (spec.zero() == data.zero_()).all()
    assert make_composite_from_td(TensorDict({"x": torch.tensor(1.0)}, []))["x"].shape == (1,)
    assert make_composite_from_td(TensorDict({"x": torch.tensor(1.0)}, []),
                                  unsqueeze_null_shapes=False)["x"].shape == ()


def test_env_creator_documented_api():
    from streamrl.envs.env_creator import EnvCreator
    from streamrl.envs.libs.gym import GymEnv

    make = EnvCreator(GymEnv, create_env_kwargs={"env_name": "CartPole-v1"})
    env = pickle.loads(pickle.dumps(make))()
    assert env.batch_size == ()
    env.close()
    assert dict(make.state_dict()) == {}
    make.load_state_dict({})


def test_pendulum_env_documented_api():
    from streamrl.envs.custom.pendulum import PendulumEnv

    env = PendulumEnv(td_params=None, seed=0, device=None)
    assert not env.batch_locked
    params = env.gen_params(g=9.81, batch_size=[4])
    assert params["params", "g"].shape == (4,)
    td = env.reset(params)
    assert set(td.keys()) >= {"th", "thdot", "params", "done", "terminated"}
    roll = env.rollout(5, auto_reset=False, tensordict=td)
    assert roll.batch_size == (4, 5)
    assert (roll["next", "reward"] <= 0).all()


def test_env_base_reset_updates_in_place_and_check_env_specs():
    from tensordict import TensorDict

    from streamrl.envs.common import EnvBase
    from streamrl.envs.custom import PendulumEnv
    from streamrl.envs.utils import check_env_specs, step_mdp

    env = PendulumEnv(seed=0)
    assert isinstance(env, EnvBase) and isinstance(env, torch.nn.Module)
    td = TensorDict()
    assert env.reset(td) is td
    check_env_specs(env)
    stepped = env.rand_step(td)
    nxt = step_mdp(stepped)
    assert "th" in nxt.keys() and "next" not in nxt.keys()


def test_gym_backend_documented_api():
    import gymnasium

    from streamrl.envs.libs import gym_backend, set_gym_backend

    with set_gym_backend("gymnasium"):
        assert gym_backend() is gymnasium
        assert gym_backend("wrappers") is gymnasium.wrappers

    @set_gym_backend(gymnasium)
    def read():
        return gym_backend()

    assert read() is gymnasium


def test_env_base_custom_env_written_the_torchrl_way():
    from tensordict import TensorDict

    from streamrl.data import Bounded, Categorical, Composite, Unbounded
    from streamrl.envs import EnvBase, check_env_specs

    class MyEnv(EnvBase):
        def __new__(cls, *args, **kwargs):
            batch_size = kwargs.setdefault("batch_size", torch.Size([]))
            cls._output_spec = Composite(
                full_observation_spec=Composite(observation=Unbounded((*batch_size, 3)),
                                                shape=batch_size),
                full_reward_spec=Unbounded((*batch_size, 1)),
                full_done_spec=Categorical(2, (*batch_size, 1), dtype=torch.bool),
                shape=batch_size,
            )
            cls._input_spec = Composite(full_action_spec=Bounded(-1, 1, (*batch_size, 3)),
                                        shape=batch_size)
            return super().__new__(cls, *args, **kwargs)

        def __init__(self, **kwargs):
            super().__init__(device="cpu", allow_done_after_reset=False)
            self.register_buffer("state", torch.zeros(*self.batch_size, 3))

        def _reset(self, tensordict):
            return TensorDict({"observation": self.state.zero_().clone()}, self.batch_size)

        def _step(self, tensordict):
            self.state += tensordict["action"]
            return TensorDict({"observation": self.state.clone(),
                               "reward": self.state.sum(-1, keepdim=True),
                               "done": torch.zeros(*self.batch_size, 1, dtype=torch.bool)},
                              self.batch_size)

        def _set_seed(self, seed):
            torch.manual_seed(seed)

    env = MyEnv(batch_size=[2])
    assert env.batch_size == (2,) and env.observation_spec_unbatched["observation"].shape == (3,)
    check_env_specs(env)
    assert env.rollout(3)["next", "observation"].shape == (2, 3, 3)
