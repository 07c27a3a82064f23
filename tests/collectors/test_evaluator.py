"""streamrl.collectors.Evaluator: blocking and background evaluation with TorchRL's interface."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.collectors import Evaluator
from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.envs.utils import RandomPolicy
from streamrl.ops import play_episodes
from streamrl.record import CSVLogger


class _Const(nn.Module):
    """Pendulum policy with one weight: action = w (a constant torque)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, obs):
        return self.w.expand(*obs.shape[:-1], 1)


def _policy():
    return TensorDictModule(_Const(), in_keys=["observation"], out_keys=["action"])


def test_evaluate_reports_torchrl_metric_names_and_counts():
    env = GymEnv("CartPole-v1")
    ev = Evaluator(env, RandomPolicy(env.action_spec), num_trajectories=3, seed=1)
    result = ev.evaluate(step=7)
    assert result["eval/num_episodes"] == 3 and result["eval/step"] == 7
    # CartPole pays 1 per step: mean return == mean length
    assert result["eval/reward"] == pytest.approx(result["eval/episode_length"])
    assert result["eval/fps"] > 0
    # no step given: an internal counter continues from the last step
    assert ev.evaluate()["eval/step"] == 8
    assert ev.evaluations == 2
    ev.shutdown()
    assert env.is_closed is False  # the caller's env is the caller's to close
    env.close()


def test_the_same_seed_gives_the_same_result_and_max_steps_truncates():
    ev = Evaluator(lambda: GymEnv("Pendulum-v1"), _policy(), num_trajectories=2, max_steps=20,
                   seed=0, log_prefix="test")
    a, b = ev.evaluate(), ev.evaluate()
    assert a["test/reward"] == b["test/reward"]
    assert a["test/episode_length"] == 20.0  # Pendulum never ends by itself: truncated at 20
    ev.shutdown()


def test_weights_are_copied_at_trigger_time():
    train = _policy()
    ev = Evaluator(lambda: GymEnv("Pendulum-v1"), train, num_trajectories=1, max_steps=10,
                   seed=0)
    base = ev.evaluate()["eval/reward"]
    with torch.no_grad():
        train.module.w.fill_(2.0)
    assert ev.trigger_eval(step=1)
    with torch.no_grad():
        train.module.w.fill_(0.0)  # changed after the trigger: must not be seen
    pushed = ev.wait(timeout=30)
    assert pushed is not None and pushed["eval/reward"] != base
    # explicit weights: a module, a TensorDict and a state dict give the same result
    other = _policy()
    with torch.no_grad():
        other.module.w.fill_(2.0)
    r1 = ev.evaluate(other)["eval/reward"]
    r2 = ev.evaluate(Evaluator.extract_weights(other))["eval/reward"]
    r3 = ev.evaluate(other.state_dict())["eval/reward"]
    assert r1 == r2 == r3 == pushed["eval/reward"]
    # the caller's policy is untouched by the evaluation copy
    assert float(train.module.w.detach()) == 0.0
    ev.shutdown()


def test_background_busy_policies_and_callback():
    results = []
    env = SerialEnv(2, lambda: GymEnv("CartPole-v1"))
    ev = Evaluator(env, RandomPolicy(env.action_spec), num_trajectories=4, seed=0,
                   on_result=results.append)
    assert ev.trigger_eval(step=1)
    skipped = not ev.trigger_eval(step=2)  # skipped if the first one still runs
    first = ev.wait(timeout=30)
    assert first["eval/step"] == 1 and first["eval/num_episodes"] == 4
    assert ev.poll() is None or skipped is False
    assert not ev.pending or ev.wait(timeout=30) is not None
    assert isinstance(results[0], TensorDict) and int(results[0]["eval/step"]) == 1

    queued = Evaluator(env, RandomPolicy(env.action_spec), num_trajectories=2,
                       busy_policy="queue")
    assert queued.trigger_eval(step=1) and queued.trigger_eval(step=2)
    steps = [queued.wait(timeout=30)["eval/step"], queued.wait(timeout=30)["eval/step"]]
    assert steps == [1, 2] and not queued.pending and queued.wait(timeout=0.1) is None
    queued.shutdown()
    ev.shutdown()
    env.close()


def test_busy_error_and_failure_in_background():
    gate = threading.Event()

    def slow(td):
        gate.wait(10)
        return RandomPolicy(spec)(td)

    env = GymEnv("CartPole-v1")
    spec = env.action_spec
    ev = Evaluator(env, slow, num_trajectories=1, busy_policy="error")
    assert ev.trigger_eval()
    with pytest.raises(RuntimeError, match="still running"):
        ev.trigger_eval()
    gate.set()
    assert ev.wait(timeout=30) is not None

    def broken(td):
        raise ValueError("policy exploded")

    bad = Evaluator(env, broken, num_trajectories=1)
    assert bad.trigger_eval()
    with pytest.raises(RuntimeError, match="background evaluation failed") as info:
        bad.wait(timeout=30)
    assert isinstance(info.value.__cause__, ValueError)
    bad.shutdown()
    ev.shutdown()
    env.close()


def test_logger_receives_the_metrics(tmp_path):
    logger = CSVLogger("exp", log_dir=str(tmp_path))
    env = GymEnv("CartPole-v1")
    ev = Evaluator(env, RandomPolicy(env.action_spec), num_trajectories=2, logger=logger)
    result = ev.evaluate(step=5)
    scalars = tmp_path / "exp" / "scalars" / "eval"
    step, value = (scalars / "reward.csv").read_text().strip().split(",")
    assert int(step) == 5 and float(value) == pytest.approx(result["eval/reward"])
    assert (scalars / "episode_length.csv").exists() and not (scalars / "step.csv").exists()
    ev.shutdown()
    env.close()


def test_state_dict_round_trip_and_shutdown_leaves_no_thread():
    before = threading.active_count()
    env = GymEnv("CartPole-v1")
    ev = Evaluator(env, RandomPolicy(env.action_spec), num_trajectories=1)
    ev.trigger_eval(step=3)
    ev.wait(timeout=30)
    state = ev.state_dict()
    assert state == {"evaluations": 1, "step": 3}
    other = Evaluator(env, RandomPolicy(env.action_spec), num_trajectories=1)
    other.load_state_dict(state)
    assert other.evaluate()["eval/step"] == 4
    with pytest.raises(KeyError, match="evaluations"):
        other.load_state_dict({"step": 1})
    ev.shutdown()
    ev.shutdown()  # idempotent
    other.shutdown()
    deadline = time.time() + 5
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before
    with pytest.raises(RuntimeError, match="shut down"):
        ev.evaluate()
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one of policy and policy_factory"),
        ({"policy": 3}, TypeError, "policy must be callable"),
        ({"policy": len, "num_trajectories": 0}, ValueError, "num_trajectories"),
        ({"policy": len, "max_steps": 0}, ValueError, "max_steps"),
        ({"policy": len, "busy_policy": "drop"}, ValueError, "busy_policy"),
        ({"policy": len, "backend": "ray"}, ValueError, "backend must be 'thread'"),
        ({"policy": len, "logger": object()}, TypeError, "log_scalar"),
        ({"policy": len, "frames_per_batch": 10}, TypeError, "frames_per_batch"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Evaluator(lambda: GymEnv("CartPole-v1"), **kwargs)


def test_policy_factory_builds_with_the_env():
    seen = []

    def factory(env):
        seen.append(env)
        return RandomPolicy(env.action_spec)

    ev = Evaluator(lambda: GymEnv("CartPole-v1"), policy_factory=factory, num_trajectories=1)
    ev.evaluate()
    assert len(seen) == 1 and isinstance(seen[0], GymEnv)
    ev.shutdown()


def test_play_episodes_more_episodes_than_envs_and_truncation():
    env = SerialEnv(2, lambda: GymEnv("CartPole-v1"))
    stats = play_episodes(env, RandomPolicy(env.action_spec), num_episodes=5, seed=0)
    assert stats.returns.shape == (5,) and torch.equal(stats.returns, stats.lengths.double())
    with pytest.raises(RuntimeError, match="did not end within max_steps=3"):
        play_episodes(env, RandomPolicy(env.action_spec), max_steps=3)
    cut = play_episodes(env, RandomPolicy(env.action_spec), max_steps=3, truncate=True,
                        num_episodes=3)
    assert cut.lengths.max() <= 3 and cut.lengths.shape == (3,)
    with pytest.raises(ValueError, match="num_episodes"):
        play_episodes(env, RandomPolicy(env.action_spec), num_episodes=0)
    env.close()
