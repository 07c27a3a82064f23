"""Task families and SampleTask: seeded task streams repeat, the parameters reach the
simulator, objective families rewrite the reward, held-out tables are taken in order, a
batched env's members get their own tasks, and bad input is named."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from streamrl.envs import GymEnv, PendulumEnv, SerialEnv, TransformedEnv
from streamrl.envs.tasks import (
    CartPoleFamily,
    HalfCheetahDirFamily,
    HalfCheetahVelFamily,
    PendulumFamily,
    SampleTask,
    TaskFamily,
)
from streamrl.envs.utils import check_env_specs
from streamrl.testing import EnvContractTests


def _pendulum(seed=None, **options):
    return TransformedEnv(GymEnv("Pendulum-v1"), SampleTask(PendulumFamily(), seed=seed,
                                                            **options))


def _tasks(env, n):
    out = []
    for _ in range(n):
        td = env.reset()
        out.append((int(td["task", "id"]), td["task", "params"].tolist()))
    return out


class TestCartPoleFamilyContract(EnvContractTests):
    def make_env(self):
        return TransformedEnv(GymEnv("CartPole-v1"), SampleTask(CartPoleFamily(), seed=0))


class TestBatchedPendulumFamilyContract(EnvContractTests):
    def make_env(self):
        return SerialEnv(2, lambda: _pendulum(resample="reset"))


def test_a_seeded_env_draws_the_same_task_stream():
    a, b, c = _pendulum(), _pendulum(), _pendulum()
    a.set_seed(3)
    b.set_seed(3)
    c.set_seed(4)
    first, again, other = _tasks(a, 4), _tasks(b, 4), _tasks(c, 4)
    assert first == again and first != other
    assert [i for i, _ in first] == [0, 1, 2, 3]  # ids count the tasks drawn
    assert len({tuple(p) for _, p in first}) == 4
    a.set_seed(3)  # seeding again starts the stream again
    assert _tasks(a, 2) == first[:2]


def test_the_parameters_reach_the_simulator_and_change_the_dynamics():
    env = TransformedEnv(GymEnv("CartPole-v1"), SampleTask(CartPoleFamily(), seed=0))
    td = env.reset()
    length, masspole = td["task", "params"].tolist()
    cartpole = env.base_env._env.unwrapped
    assert cartpole.length == pytest.approx(length) and cartpole.masspole == pytest.approx(masspole)
    assert cartpole.total_mass == pytest.approx(masspole + cartpole.masscart)
    assert cartpole.polemass_length == pytest.approx(masspole * length)

    heavy = PendulumFamily(m=(1.0, 1.0), g=(15.0, 15.0))
    light = PendulumFamily(m=(1.0, 1.0), g=(5.0, 5.0))
    outs = []
    for family in (heavy, light):
        env = TransformedEnv(GymEnv("Pendulum-v1"), SampleTask(family, seed=0))
        env.set_seed(0)
        td = env.reset()
        assert env.base_env._env.unwrapped.g == family.ranges["g"][0]
        outs.append(env.step(td.set("action", torch.zeros(1)))["next", "observation"])
    assert not torch.allclose(outs[0], outs[1])  # same start, same torque: gravity differs


def test_every_step_carries_the_task_and_specs_hold():
    env = _pendulum(seed=1)
    check_env_specs(env, seed=0)
    rollout = env.rollout(5)
    assert rollout["task", "id"].shape == (5, 1) and rollout["next", "task", "params"].shape == (5, 2)
    assert (rollout["task", "params"] == rollout["task", "params"][0]).all()


def test_held_out_tasks_are_taken_in_order_and_never_keeps_the_first():
    table = torch.tensor([[1.0, 9.0], [2.0, 11.0]])
    env = _pendulum(tasks=table)
    assert _tasks(env, 3) == [(0, [1.0, 9.0]), (1, [2.0, 11.0]), (0, [1.0, 9.0])]
    assert _tasks(_pendulum(tasks=table, first=1), 2) == [(1, [2.0, 11.0]), (0, [1.0, 9.0])]
    member = _pendulum(tasks=table, first=1, resample="never")
    assert _tasks(member, 2) == [(1, [2.0, 11.0])] * 2
    fixed = _pendulum(seed=0, resample="never")
    first = _tasks(fixed, 3)
    assert first[0] == first[1] == first[2]


def test_trials_keep_a_task_for_several_episodes_and_flag_the_new_ones():
    env = _pendulum(seed=0, resample="trial", episodes_per_trial=3)
    seen = []
    for _ in range(7):
        td = env.reset()
        seen.append((int(td["task", "id"]), bool(td["task", "new"])))
    assert seen == [(0, True), (0, False), (0, False), (1, True), (1, False), (1, False),
                    (2, True)]
    rollout = env.rollout(3)
    assert not rollout["next", "task", "new"].any()  # steps never start a task
    plain = _pendulum(seed=0)
    assert all(bool(plain.reset()["task", "new"]) for _ in range(3))  # every reset does
    with pytest.raises(ValueError, match="episodes_per_trial must be an int >= 1, found 0"):
        SampleTask(PendulumFamily(), resample="trial", episodes_per_trial=0)


def test_the_step_that_ends_a_trial_is_flagged():
    from streamrl.envs import PointNavigationEnv
    from streamrl.envs.tasks import NavigationFamily

    def member():
        return TransformedEnv(PointNavigationEnv(max_steps=3),
                              SampleTask(NavigationFamily(), resample="trial",
                                         episodes_per_trial=2, seed=0))

    env = SerialEnv(2, member)
    env.set_seed(0)
    rollout = env.rollout(12, break_when_any_done=False)
    end = rollout["next", "task", "end"].squeeze(-1)
    done = rollout["next", "done"].squeeze(-1)
    # episodes of 3 steps, trials of 2 episodes: the trial ends at steps 5 and 11
    assert done[:, [2, 5, 8, 11]].all() and done.sum() == 8
    assert end.nonzero()[:, 1].tolist() == [5, 11, 5, 11]
    new = rollout["task", "new"].squeeze(-1)
    assert new[:, 1:].eq(end[:, :-1]).all()  # the reset after a trial's end starts a task
    assert not rollout["task", "end"].any()  # a reset never ends one
    every = SerialEnv(1, lambda: TransformedEnv(PointNavigationEnv(max_steps=3),
                                                SampleTask(NavigationFamily(), seed=0)))
    assert every.rollout(6, break_when_any_done=False)["next", "task", "end"].squeeze().tolist() \
        == [False, False, True] * 2
    env.close()
    every.close()


def test_a_recurrent_module_keeps_its_state_across_the_episodes_of_a_trial():
    from streamrl.modules import GRUModule

    env = _pendulum(seed=0, resample="trial", episodes_per_trial=2)
    gru = GRUModule(input_size=3, hidden_size=4, in_keys=["observation", "recurrent_state",
                                                         ("task", "new")],
                    out_keys=["features", ("next", "recurrent_state")])
    first = env.reset()
    state = torch.ones(1, 4)
    carried = gru(first.clone().set("recurrent_state", state))  # a new task: state reset
    again = env.reset()  # the same trial: state kept
    kept = gru(again.clone().set("recurrent_state", state))
    fresh = gru(again.clone().set("recurrent_state", torch.zeros(1, 4)))
    assert not torch.allclose(kept["features"], fresh["features"])
    zero = gru(first.clone().set("recurrent_state", torch.zeros(1, 4)))
    torch.testing.assert_close(carried["features"], zero["features"])


def test_a_batched_env_gives_each_member_its_own_task():
    env = SerialEnv(3, lambda: _pendulum())
    env.set_seed(7)
    td = env.reset()
    params = td["task", "params"]
    assert params.shape == (3, 2) and len({tuple(p) for p in params.tolist()}) == 3
    again = SerialEnv(3, lambda: _pendulum())
    again.set_seed(7)
    assert (again.reset()["task", "params"] == params).all()
    rollout = env.rollout(4, break_when_any_done=False)
    assert rollout["next", "task", "params"].shape == (3, 4, 2)
    env.close()
    again.close()


def test_halfcheetah_families_rewrite_the_reward():
    if importlib.util.find_spec("mujoco") is None:  # not imported here: GymEnv picks the
        pytest.skip("needs mujoco")                   # headless GL backend before it does
    vel = HalfCheetahVelFamily(velocity=(1.5, 1.5))
    env = TransformedEnv(GymEnv("HalfCheetah-v5", info_keys=list(vel.info_keys)),
                         SampleTask(vel, seed=0))
    out = env.rand_step(env.reset())["next"]
    expected = -(out["x_velocity"].float() - 1.5).abs() + out["reward_ctrl"]
    assert out["reward"].item() == pytest.approx(expected.item(), rel=1e-5)

    backwards = HalfCheetahDirFamily()
    signs = backwards.sample(200, torch.Generator().manual_seed(0))
    assert set(signs.flatten().tolist()) == {-1.0, 1.0}
    env = TransformedEnv(GymEnv("HalfCheetah-v5", info_keys=list(backwards.info_keys)),
                         SampleTask(backwards, tasks=[[-1.0]]))
    out = env.rand_step(env.reset())["next"]
    assert out["reward"].item() == pytest.approx(
        (-out["x_velocity"].float() + out["reward_ctrl"]).item(), rel=1e-5)

    plain = TransformedEnv(GymEnv("HalfCheetah-v5"), SampleTask(HalfCheetahVelFamily(), seed=0))
    with pytest.raises(KeyError, match=r"reads 'x_velocity' from the step's info: build the env "
                                       r"with GymEnv\('HalfCheetah-v5', info_keys="):
        plain.rand_step(plain.reset())


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="family must be a TaskFamily, found str"):
        SampleTask("pendulum")
    with pytest.raises(ValueError, match=r"resample must be one of \['reset', 'trial', "
                                         r"'never'\], found 'step'"):
        SampleTask(PendulumFamily(), resample="step")
    with pytest.raises(ValueError, match=r"tasks must be a \[k, 2\] table of \('m', 'g'\), "
                                         r"found shape \[3\]"):
        SampleTask(PendulumFamily(), tasks=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"first must be a row of tasks \(0 .. 0\), found 1"):
        SampleTask(PendulumFamily(), tasks=[[1.0, 2.0]], first=1)
    with pytest.raises(ValueError, match="without tasks it must be 0, found 2"):
        SampleTask(PendulumFamily(), first=2)
    with pytest.raises(ValueError, match=r"PendulumFamily: g needs low <= high, found \(5, 1\)"):
        PendulumFamily(g=(5.0, 1.0))
    with pytest.raises(ValueError, match="m must be a \\(low, high\\) pair of numbers"):
        PendulumFamily(m="heavy")
    with pytest.raises(ValueError, match=r"a task is 2 parameters \('m', 'g'\), found shape \[3\]"):
        PendulumFamily().check(torch.zeros(3))
    with pytest.raises(TypeError, match=r"expected a GymEnv under it .*found PendulumEnv"):
        TransformedEnv(PendulumEnv(), SampleTask(PendulumFamily())).reset()
    batched = TransformedEnv(SerialEnv(2, lambda: GymEnv("Pendulum-v1")),
                             SampleTask(PendulumFamily()))
    with pytest.raises(TypeError, match=r"batch each member: SerialEnv\(n, lambda: .*found "
                                        r"SerialEnv"):
        batched.reset()
    batched.close()


def test_a_family_of_ones_own():
    class Longer(TaskFamily):
        env_name = "CartPole-v1"

        def apply(self, env, params):
            env.unwrapped.length = float(params[0])

    env = TransformedEnv(GymEnv("CartPole-v1"), SampleTask(Longer({"length": (2.0, 3.0)}),
                                                           seed=0))
    td = env.reset()
    assert 2.0 <= env.base_env._env.unwrapped.length <= 3.0
    assert repr(env.transform[0]) == "SampleTask(Longer(length=(2, 3)), resample='reset')"
    assert td["task", "params"].item() == pytest.approx(env.base_env._env.unwrapped.length)
