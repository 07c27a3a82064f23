"""Meta-World task families (the optional metaworld package): seeded task streams repeat,
a task's goal reaches the simulator, held-out tasks are the benchmark's test split, MT10
batches one member per class, the step info's success is read, and bad input is named."""

from __future__ import annotations

import importlib
import importlib.util
import pickle

import pytest
import torch

from streamrl.envs import Compose, DoubleToFloat, TransformedEnv
from streamrl.envs.tasks import MetaWorldFamily, SampleTask, metaworld_batch
from streamrl.testing import check_env_contract

pytestmark = pytest.mark.skipif(importlib.util.find_spec("metaworld") is None,
                                reason="needs the optional metaworld package")


@pytest.fixture(scope="module")
def ml1():
    return MetaWorldFamily("ML1", "reach-v3", seed=0)


@pytest.fixture(scope="module")
def mt1():
    return MetaWorldFamily("MT1", "reach-v3", seed=0)


@pytest.fixture(scope="module")
def mt10():
    return MetaWorldFamily("MT10", seed=0)


def _goal(family, row):
    """The goal position a task of ``family`` sets (the end of its random vector)."""
    return torch.tensor(pickle.loads(family.tasks[row].data)["rand_vec"][-3:])


def _env(family, **options):
    return TransformedEnv(family.make_env(max_episode_steps=10),
                          Compose(DoubleToFloat(), SampleTask(family, **options)))


def _rows(env, n):
    out = []
    for _ in range(n):
        td = env.reset()
        out.append(int(td["task", "params"][0]))
    return out


def test_sampled_tasks_repeat_with_the_seed(ml1):
    streams = []
    for seed in (3, 3, 4):
        with _env(ml1) as env:
            env.set_seed(seed)
            streams.append(_rows(env, 6))
    assert streams[0] == streams[1]
    assert streams[0] != streams[2]
    assert all(0 <= row < ml1.num_train for row in streams[0] + streams[2])  # training tasks
    gen = torch.Generator()
    assert torch.equal(ml1.sample(8, gen.manual_seed(1)), ml1.sample(8, gen.manual_seed(1)))


def test_the_goal_reaches_the_simulator(mt1, ml1):
    with _env(mt1, tasks=mt1.train_tasks()[[5, 17]]) as env:
        goals = []
        for row in (5, 17):
            td = env.reset()
            assert int(td["task", "params"][0]) == row
            target = torch.as_tensor(env.base_env._env.unwrapped._target_pos)
            torch.testing.assert_close(target, _goal(mt1, row))
            # MT observes its goal: the observation's last 3 entries
            torch.testing.assert_close(td["observation"][-3:], _goal(mt1, row).float())
            goals.append(target)
        assert not torch.allclose(goals[0], goals[1])
    with _env(ml1, tasks=ml1.train_tasks()[:1]) as env:
        td = env.reset()
        torch.testing.assert_close(torch.as_tensor(env.base_env._env.unwrapped._target_pos),
                                   _goal(ml1, 0))
        assert not td["observation"][-3:].any()  # ML hides it


def test_held_out_tasks_are_the_benchmarks_test_split(ml1):
    metaworld = importlib.import_module("metaworld")
    bench = metaworld.ML1("reach-v3", seed=0)
    test = ml1.test_tasks()
    assert test.shape == (len(bench.test_tasks), 1)
    for k, row in enumerate(test[:, 0].long().tolist()):
        assert ml1.tasks[row].data == bench.test_tasks[k].data
    train_goals = {tuple(_goal(ml1, r).tolist()) for r in range(ml1.num_train)}
    assert not any(tuple(_goal(ml1, r).tolist()) in train_goals for r in test[:, 0].long().tolist())
    with _env(ml1, tasks=test, resample="reset") as env:
        ids = []
        for row in _rows(env, 3):
            assert row in test[:, 0].long().tolist()
            ids.append(row)
        assert ids == test[:3, 0].long().tolist()  # in order


@pytest.mark.filterwarnings("ignore:Constant:UserWarning")  # the scripted policy's
def test_the_success_info_is_read(mt1):
    # Meta-World's scripted policy solves reach: the hand follows the mocap (MuJoCo 4 too)
    policies = importlib.import_module("metaworld.policies")
    policy = policies.SawyerReachV3Policy()
    env = TransformedEnv(mt1.make_env(), SampleTask(mt1, tasks=mt1.train_tasks()[:1]))
    with env:
        td = env.reset()
        assert "success" in env.observation_spec.keys()
        successes = []
        for _ in range(150):
            action = torch.as_tensor(policy.get_action(td["observation"].numpy()),
                                     dtype=torch.float32).clamp(-1, 1)
            td = env.step(td.set("action", action))["next"]
            successes.append(float(td["success"]))
        assert successes[0] == 0.0 and max(successes) == 1.0


def test_the_mt10_batch_has_one_member_per_class(mt10):
    mt10_classes = importlib.import_module("metaworld.env_dict").MT10_V3
    with metaworld_batch(mt10, seed=0) as env:
        assert env.batch_size == (10,)
        td = env.reset()
        assert td["task", "id"].flatten().tolist() == list(range(10))
        assert td["observation"].shape == (10, 39) and td["observation"].dtype == torch.float32
        assert env.observation_spec["observation"].shape == (10, 39)
        classes = [type(e.base_env._env.unwrapped) for e in env._envs]
        assert classes == list(mt10_classes.values())
        for k, row in enumerate(td["task", "params"][:, 0].tolist()):
            assert mt10.class_of(torch.tensor([row])) == list(mt10_classes)[k]
        out = env.rollout(3)
        assert out["next", "success"].shape == (10, 3)
        assert (out["task", "id"][:, :, 0] == torch.arange(10)[:, None]).all()
    # a class-balanced sample: one goal of each class, in order
    rows = mt10.sample(10, torch.Generator().manual_seed(0))
    assert [mt10.class_of(r) for r in rows] == list(mt10_classes)


def test_a_resampling_batch_keeps_each_members_class(mt10):
    with metaworld_batch(mt10, resample="reset", seed=1) as env:
        first, second = env.reset(), env.reset()
        for td in (first, second):
            names = [mt10.class_of(r) for r in td["task", "params"]]
            assert names == list(mt10.classes)
        assert (first["task", "params"] != second["task", "params"]).all()


def test_the_env_contract(mt1):
    check_env_contract(lambda: _env(mt1, seed=0))


def test_bad_input_is_named(mt1, mt10):
    with pytest.raises(ValueError, match=r"found 'reach-v9' \(did you mean reach-v3"):
        MetaWorldFamily("MT1", "reach-v9")
    with pytest.raises(ValueError, match="benchmark must be one of"):
        MetaWorldFamily("MT11")
    with pytest.raises(ValueError, match="env_name must be None"):
        MetaWorldFamily("MT10", "reach-v3")
    with pytest.raises(ValueError, match="no test tasks"):
        mt1.test_tasks()
    with pytest.raises(ValueError, match=r"a row of its 50 tasks \(0 \.\. 49\), found 50"):
        mt1.index(torch.tensor([50.0]))
    with pytest.raises(ValueError, match=r"found 1\.5"):
        mt1.index(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="has no env class 'push-v3'"):
        mt1.train_tasks("push-v3")
    with pytest.raises(ValueError, match="name one with env_name"):
        mt10.make_env()
    push = mt10.train_tasks("push-v3")[0]
    with mt10.make_env("reach-v3") as env:
        with pytest.raises(ValueError, match=r"is of .push-v3.*the env is a SawyerReach"):
            mt10.apply(env._env, push)
