"""The operator contract (:class:`streamrl.graph.testing.OperatorContract`) for every operator
class of :mod:`streamrl.ops`, each in a small CartPole configuration, plus the clauses an RL
operator adds: its state after a run does not depend on its placement, a restored budget is
honoured, and the envs and files it opens are closed, also when a step fails.

:func:`test_every_operator_has_a_contract_case` walks the package, so an operator added without
a case here fails the suite.
"""

from __future__ import annotations

import copy
import functools
import importlib
import inspect
import itertools
import pkgutil
from pathlib import Path
from typing import Any

import pytest
import torch
from tensordict import TensorDict, TensorDictBase

import streamrl
import streamrl.ops
from streamrl.data import LazyTensorStorage, RandomSampler, TensorDictReplayBuffer
from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.graph import Operator, OperatorError
from streamrl.graph.testing import OperatorContract, run_operator
from streamrl.modules import MLP, QValueActor
from streamrl.objectives import DQNLoss, HardUpdate
from streamrl.ops import (
    BatchedPolicyServer,
    CompleteTrajectories,
    EnvSource,
    Evaluator,
    Learner,
    MetricsSink,
    Pacer,
    PolicyStage,
    PolicyWeights,
    ReplayDraws,
    ReplaySink,
    ReplaySource,
    Rollout,
    SegmentBatcher,
    StackBatches,
    TrajectoryBatcher,
    TransitionBatcher,
    Trigger,
    WeightsSource,
    WeightsToken,
    WeightSync,
)

# a hang (an operator that never ends its stream) fails fast instead of at the 300 s default
pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- small CartPole fixtures
# Module-level functions and classes, so that a process placement can pickle them.

def cartpole() -> GymEnv:
    return GymEnv("CartPole-v1", categorical_action_encoding=True)  # index actions


def two_cartpoles() -> SerialEnv:
    return SerialEnv(2, cartpole)


class RecordingFactory:
    """An env factory that remembers the envs it built, so a test can check they were closed."""

    def __init__(self, make: Any):
        self.make = make
        self.made: list[Any] = []

    def __call__(self) -> Any:
        env = self.make()
        self.made.append(env)
        return env


def q_actor() -> QValueActor:
    """A tiny Q-network for CartPole, the same weights on every call (greedy: deterministic)."""
    torch.manual_seed(0)
    net = MLP(in_features=4, out_features=2, num_cells=[8])
    return QValueActor(net, spec=cartpole().action_spec)


@functools.cache
def _collected() -> TensorDictBase:
    r = Rollout(two_cartpoles, frames_per_batch=48, seed=0)
    r.open()
    try:
        return r.step({})["out"]
    finally:
        r.close()


def collected() -> TensorDictBase:
    """48 CartPole transitions from random actions, ``[2 envs, 24 steps]`` (a fresh copy)."""
    return _collected().clone()


def chunks() -> list[TensorDictBase]:
    """``collected()`` as three ``[2, 8]`` batches, as a Rollout with 16 frames per batch
    emits them."""
    return list(collected().split(8, dim=1))


def filled_buffer() -> TensorDictReplayBuffer:
    buffer = TensorDictReplayBuffer(storage=LazyTensorStorage(64), sampler=RandomSampler(seed=0))
    buffer.extend(collected().reshape(-1))
    return buffer


def test_fixture_data_holds_episode_ends():
    # the trajectory-id bookkeeping is only exercised when an episode ends inside the data
    assert collected().get(("next", "done")).any()


# ---------------------------------------------------------------- the RL operator clauses

class OpsContract(OperatorContract):
    """The graph's contract plus what the RL operators add (tests of this module only)."""

    def test_state_after_a_run_is_the_same_in_every_placement(self) -> None:
        # A process-placed operator's state is copied back when the run ends, so a checkpoint
        # (Graph.state_dict) must not depend on where the operator ran. For sinks this is the
        # only placement check with teeth: they emit nothing to compare.
        ref = self.make_operator()
        run_operator(ref, self.feeds(), deterministic=True)
        expected = ref.state_dict()
        for placement in self.placements:
            op = self.make_operator()
            run_operator(op, self.feeds(), placement=placement)
            assert _same(op.state_dict(), expected), (
                f"placement {placement!r}: {op.state_dict()!r} != {expected!r}"
            )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (torch.Tensor, TensorDictBase)):
        return isinstance(b, type(a)) and a.shape == b.shape and bool((a == b).all())
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return (isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    return a == b


def _fail(inputs: dict[str, Any]) -> Any:
    raise RuntimeError("step failed on purpose")


def run_failing(op: Operator, feeds: dict[str, list[Any]], placement: str) -> None:
    """Run ``op`` with a ``step`` that raises; the error must reach the caller."""
    op.step = _fail
    with pytest.raises(OperatorError):
        run_operator(op, feeds, placement=placement)


# ---------------------------------------------------------------- sources

class TestRolloutContract(OpsContract):
    def make_operator(self) -> Rollout:
        return Rollout(two_cartpoles, q_actor(), frames_per_batch=16, total_frames=48, seed=0)

    @pytest.mark.parametrize("placement", ["inline", "thread"])
    @pytest.mark.parametrize("fail", [False, True])
    def test_env_closed_after_the_run(self, placement, fail):
        make = RecordingFactory(two_cartpoles)
        op = Rollout(make, q_actor(), frames_per_batch=16, total_frames=48, seed=0)
        if fail:
            run_failing(op, {}, placement)
        else:
            run_operator(op, {}, placement=placement)
        assert len(make.made) == 1 and make.made[0].is_closed

    def test_restored_budget_is_honoured(self):
        done = self.make_operator()
        assert len(run_operator(done, {})["out"]) == 3
        resumed = self.make_operator()
        resumed.load_state_dict(copy.deepcopy(done.state_dict()))
        assert run_operator(resumed, {}) == {"out": []}

    def test_restored_rollout_never_repeats_a_trajectory_id(self):
        first = self.make_operator()
        before = torch.cat([b.get(("collector", "traj_ids")).reshape(-1)
                            for b in run_operator(first, {})["out"]])
        resumed = Rollout(two_cartpoles, q_actor(), frames_per_batch=16, total_frames=96, seed=1)
        resumed.load_state_dict(copy.deepcopy(first.state_dict()))
        after = torch.cat([b.get(("collector", "traj_ids")).reshape(-1)
                           for b in run_operator(resumed, {})["out"]])
        assert after.numel() == 48
        assert not set(after.tolist()) & set(before.tolist())


class TestReplaySourceContract(OpsContract):
    def make_operator(self) -> ReplaySource:
        return ReplaySource(filled_buffer(), 8, num_batches=3)

    def test_restored_budget_is_honoured(self):
        done = self.make_operator()
        assert len(run_operator(done, {})["out"]) == 3
        resumed = self.make_operator()
        resumed.load_state_dict(copy.deepcopy(done.state_dict()))
        assert run_operator(resumed, {}) == {"out": []}


class TestTriggerContract(OpsContract):
    # Not process-placed: tokens are pulled by code in the caller's process, which a copy of
    # the trigger in a worker would never see (its docstring says: place it on a thread).
    placements = ("inline", "thread")

    def make_operator(self) -> Trigger:
        trigger = Trigger(poll_s=0.01)
        trigger.pull(3)
        trigger.stop()
        return trigger

    def test_emits_what_was_pulled_then_stops(self):
        op = self.make_operator()
        assert len(run_operator(op, {}, placement="thread")["out"]) == 3
        assert op.state_dict() == {"emitted": 3}


class TestPacerContract(OpsContract):
    def make_operator(self) -> Pacer:
        return Pacer([0, 0, 2, 2, 3])

    def feeds(self) -> dict[str, list[Any]]:
        return {"in": [{"version": v} for v in range(1, 5)]}

    def test_releases_each_batch_once_its_publications_arrived(self):
        op = self.make_operator()
        assert run_operator(op, self.feeds())["out"] == [0, 1, 2, 3, 4]
        assert op.state_dict() == {"seen": 4, "released": 5}
        op = Pacer([1, 3])
        assert op.open() is None
        assert op.step({"in": {}})["out"].items == [0]
        assert op.step({"in": {}}) is None
        assert op.step({"in": {}})["out"].items == [1]
        assert op.step({"in": {}}) is None  # everything released: later publications are spare

    @pytest.mark.parametrize("schedule", [[0, 2, 1], [-1], [0.5], [True]])
    def test_rejects_a_bad_schedule(self, schedule):
        with pytest.raises(ValueError, match="schedule"):
            Pacer(schedule)


# ---------------------------------------------------------------- the feedback-cycle operators

def env_actions(n: int) -> list[TensorDictBase]:
    return [TensorDict({"action": torch.tensor([i % 2, (i + 1) % 2])}, [2]) for i in range(n)]


class TestEnvSourceContract(OpsContract):
    # the budget (6 steps of 2 envs) ends the stream before the 8 actions are used up
    def make_operator(self) -> EnvSource:
        return EnvSource(two_cartpoles, total_frames=12, seed=0)

    def feeds(self) -> dict[str, list[Any]]:
        return {"action": env_actions(8)}

    def test_budget_ends_the_stream(self):
        out = run_operator(self.make_operator(), self.feeds())
        # the reset observation primes the cycle, then one per step but the last
        assert len(out["obs"]) == 6 and len(out["out"]) == 6

    @pytest.mark.parametrize("placement", ["inline", "thread"])
    @pytest.mark.parametrize("fail", [False, True])
    def test_env_closed_after_the_run(self, placement, fail):
        make = RecordingFactory(two_cartpoles)
        op = EnvSource(make, total_frames=12, seed=0)
        if fail:
            run_failing(op, self.feeds(), placement)
        else:
            run_operator(op, self.feeds(), placement=placement)
        assert len(make.made) == 1 and make.made[0].is_closed

    def test_unbatched_env_in_a_process(self):
        actions = [TensorDict({"action": torch.tensor(i % 2)}) for i in range(4)]
        expected = run_operator(EnvSource(cartpole, seed=0), {"action": actions})
        got = run_operator(EnvSource(cartpole, seed=0), {"action": actions}, placement="process")
        assert _same(got, expected)


class TestPolicyStageContract(OpsContract):
    def make_operator(self) -> PolicyStage:
        return PolicyStage(q_actor())

    def feeds(self) -> dict[str, list[Any]]:
        return {"in": [td.select("observation") for td in collected().unbind(1)[:4]]}


class TestPolicyStageWithWeightsContract(OpsContract):
    # the shared-weights variant: the published copy acts and its version is stamped
    def make_operator(self) -> PolicyStage:
        weights = PolicyWeights(q_actor())
        weights.publish()
        return PolicyStage(weights)

    def feeds(self) -> dict[str, list[Any]]:
        return {"in": [td.select("observation") for td in collected().unbind(1)[:2]]}


class TestTrajectoryBatcherContract(OpsContract):
    # 24 steps of 2 envs: three batches of 16 frames
    def make_operator(self) -> TrajectoryBatcher:
        return TrajectoryBatcher(16)

    def feeds(self) -> dict[str, list[Any]]:
        return {"in": list(collected().unbind(1))}

    def test_restored_batcher_never_repeats_a_trajectory_id(self):
        first = self.make_operator()
        before = torch.cat([b.get(("collector", "traj_ids")).reshape(-1)
                            for b in run_operator(first, self.feeds())["out"]])
        resumed = self.make_operator()
        resumed.load_state_dict(copy.deepcopy(first.state_dict()))
        after = torch.cat([b.get(("collector", "traj_ids")).reshape(-1)
                           for b in run_operator(resumed, self.feeds())["out"]])
        assert not set(after.tolist()) & set(before.tolist())


class TestBatchedPolicyServerContract(OpsContract):
    # one env slot, so the arrival order (and the output) is the same in every placement
    def make_operator(self) -> BatchedPolicyServer:
        return BatchedPolicyServer(q_actor(), 1)

    def feeds(self) -> dict[str, list[Any]]:
        return {"obs_0": [td.select("observation") for td in collected().unbind(1)[:4]]}


class TestTransitionBatcherContract(OpsContract):
    # 24 steps of a 2-env batch from one env slot: three flat batches of 16 frames
    def make_operator(self) -> TransitionBatcher:
        return TransitionBatcher(16, 1)

    def feeds(self) -> dict[str, list[Any]]:
        return {"in_0": list(collected().unbind(1))}


# ---------------------------------------------------------------- batching and replay

class TestStackBatchesContract(OpsContract):
    def make_operator(self) -> StackBatches:
        return StackBatches(2)

    def feeds(self) -> dict[str, list[Any]]:
        return {"in0": chunks(), "in1": chunks()[::-1]}


class TestCompleteTrajectoriesContract(OpsContract):
    def make_operator(self) -> CompleteTrajectories:
        return CompleteTrajectories(1, report_pending=True)

    def feeds(self) -> dict[str, list[Any]]:
        return {"in": chunks()}


def held_chunks() -> list[TensorDictBase]:
    """``chunks()`` as a policy holding a decision for 3 steps would have stored them: a new
    decision every 3 steps and at each episode's first step."""
    data = collected()
    steps = data.batch_size[-1]
    done = data.get(("next", "done")).squeeze(-1)
    new = (torch.arange(steps) % 3 == 0).expand_as(done).clone()
    new[:, 1:] |= done[:, :-1]
    data.set(("hrl", "new"), new.unsqueeze(-1))
    data.set(("hrl", "decision"), torch.arange(steps, dtype=torch.float32).expand(
        *done.shape).unsqueeze(-1).clone())
    return list(data.split(8, dim=1))


class TestSegmentBatcherContract(OpsContract):
    def make_operator(self) -> SegmentBatcher:
        return SegmentBatcher(gamma=0.9)

    def feeds(self) -> dict[str, list[Any]]:
        return {"in": held_chunks()}


class TestReplaySinkContract(OpsContract):
    def make_operator(self) -> ReplaySink:
        return ReplaySink(TensorDictReplayBuffer(storage=LazyTensorStorage(64)))

    def feeds(self) -> dict[str, list[Any]]:
        return {"in": chunks()}

    def test_writes_flattened_transitions(self):
        op = self.make_operator()
        run_operator(op, self.feeds())
        assert op.state_dict() == {"written": 48} and len(op.buffer) == 48


class TestReplayDrawsContract(OpsContract):
    def make_operator(self) -> ReplayDraws:
        rb = TensorDictReplayBuffer(storage=LazyTensorStorage(64))
        rb.extend(TensorDict({"x": torch.arange(16.0)}, [16]))
        return ReplayDraws(rb, 4, draws_per_row=0.5, learning_starts=4)

    def feeds(self) -> dict[str, list[Any]]:
        return {"in": [3, 2, 5, 0, 6]}

    def comparable(self, outputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {"out": [item.batch_size for item in outputs["out"]]}  # random draws

    def test_draws_per_row_past_learning_starts(self):
        op = self.make_operator()
        out = run_operator(op, self.feeds())["out"]
        # 16 rows, 12 past learning_starts at 0.5 draws each: 6 draws of 4 rows
        assert [len(b) for b in out] == [4] * 6
        assert op.state_dict() == {"rows": 16, "credit": 0.0, "drawn": 6}


# ---------------------------------------------------------------- the learner side

def dqn_learner() -> Learner:
    loss = DQNLoss(q_actor(), delay_value=True)
    optim = torch.optim.Adam(loss.parameters(), lr=1e-3)
    return Learner(loss, optim, minibatch_size=8, target_updater=HardUpdate(loss, period=2),
                   max_grad_norm=10.0)


class TestLearnerContract(OpsContract):
    def make_operator(self) -> Learner:
        return dqn_learner()

    def feeds(self) -> dict[str, list[Any]]:
        return {"in": chunks()}

    def test_restored_counts_continue(self):
        first = self.make_operator()
        run_operator(first, self.feeds())
        resumed = self.make_operator()
        resumed.load_state_dict(copy.deepcopy(first.state_dict()))
        out = run_operator(resumed, self.feeds())["out"]
        assert [m["updates"] for m in out] == [8, 10, 12]
        assert [m["batches"] for m in out] == [4, 5, 6]


class TestWeightSyncContract(OpsContract):
    # no lock: a threading.Lock cannot be sent to a worker process
    def make_operator(self) -> WeightSync:
        net = q_actor()
        return WeightSync(PolicyWeights(net), net, every=2)

    def feeds(self) -> dict[str, list[Any]]:
        return {"in": [{"updates": u, "batch_policy_version": 0.0} for u in (1, 2, 3, 5)]}

    def test_publishes_every_two_updates_and_at_the_end(self):
        op = self.make_operator()
        out = run_operator(op, self.feeds())["out"]
        assert [m["policy_version"] for m in out] == [0, 1, 1, 2]
        assert op.weights.version == 2 and op.state_dict() == {"published_at": 5}
        op = self.make_operator()
        run_operator(op, {"in": [{"updates": 3}]})
        assert op.weights.version == 1  # the pending updates are published at the end


class TestEvaluatorContract(OpsContract):
    def make_operator(self) -> Evaluator:
        return Evaluator(cartpole, q_actor(), interval=2, seed=0)

    def feeds(self) -> dict[str, list[Any]]:
        # an evaluation at 2, and at the end (3 was not evaluated)
        return {"in": [{"updates": u} for u in (1, 2, 3)]}

    def comparable(self, outputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
        # eval_s is a wall-clock duration: it differs between any two runs
        return {port: [{k: v for k, v in m.items() if k != "eval_s"} for m in items]
                for port, items in outputs.items()}

    def test_evaluates_at_intervals_and_at_the_end(self):
        op = self.make_operator()
        out = run_operator(op, self.feeds())["out"]
        assert [m["updates"] for m in out] == [2, 3]
        assert op.state_dict() == {"evaluations": 2, "next_at": 4}

    @pytest.mark.parametrize("placement", ["inline", "thread"])
    @pytest.mark.parametrize("fail", [False, True])
    def test_env_closed_after_the_run(self, placement, fail):
        make = RecordingFactory(cartpole)
        op = Evaluator(make, q_actor(), interval=2, seed=0)
        if fail:
            run_failing(op, self.feeds(), placement)
        else:
            run_operator(op, self.feeds(), placement=placement)
        assert len(make.made) == 1 and make.made[0].is_closed


class TestMetricsSinkContract(OpsContract):
    _dirs = iter(())  # no files when built outside a test (the coverage walk)

    @pytest.fixture(autouse=True)
    def _run_dirs(self, tmp_path: Path):
        self._dirs = (tmp_path / f"run{i}" for i in itertools.count())

    def make_operator(self) -> MetricsSink:
        return MetricsSink(next(self._dirs, None))

    def feeds(self) -> dict[str, list[Any]]:
        return {
            "collector": chunks(),
            "learner": [{"updates": u, "loss": 1.0 / u} for u in (1, 2)],
            "eval": [{"eval_return": 9.0, "updates": 2}],
        }

    @pytest.mark.parametrize("placement", ["inline", "thread"])
    @pytest.mark.parametrize("fail", [False, True])
    def test_files_closed_after_the_run(self, placement, fail):
        op = self.make_operator()
        if fail:
            run_failing(op, self.feeds(), placement)
        else:
            run_operator(op, self.feeds(), placement=placement)
            assert op.state_dict() == {"frames": 48} and len(op.rows) == 3
        assert op.logger is not None and op.logger._csv_file.closed
        assert op.logger._jsonl_file.closed


# ---------------------------------------------------------------- every operator has a case

def _operator_classes() -> set[type]:
    """Operator classes defined outside ``streamrl.graph`` (whose own kinds have their case in
    tests/graph/test_contract.py): every module of the package is imported, so an operator
    is found whether or not a namespace exports it."""
    found = {obj for name in streamrl.ops.__all__
             if inspect.isclass(obj := getattr(streamrl.ops, name)) and issubclass(obj, Operator)}
    for info in pkgutil.walk_packages(streamrl.__path__, prefix="streamrl."):
        if info.name.startswith("streamrl.graph"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional dependency (e.g. ray) is not installed
            continue
        found.update(obj for obj in vars(module).values()
                     if inspect.isclass(obj) and issubclass(obj, Operator)
                     and obj.__module__ == info.name)
    return found


def test_every_operator_has_a_contract_case():
    covered = {type(case().make_operator()) for case in globals().values()
               if inspect.isclass(case) and issubclass(case, OperatorContract)
               and case is not OpsContract and case.__name__.startswith("Test")}
    operators = _operator_classes()
    assert {Rollout, ReplaySink, Learner} <= operators  # the walk finds operators at all
    missing = sorted(cls.__qualname__ for cls in operators - covered)
    assert not missing, f"operators without a contract case in {__name__}: {missing}"


class TestWeightsSourceContract(OpsContract):
    def make_operator(self) -> WeightsSource:
        net = q_actor()
        source = WeightsSource(net)
        source.publish()
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
        source.publish(net)  # the newest of the two is emitted, then the stream ends
        source.stop()
        return source

    def test_emits_the_newest_version_then_ends(self):
        op = self.make_operator()
        out = run_operator(op, {})["weights"]
        assert [v for v, _ in out] == [2] and op.state_dict() == {"version": 2}
        _, params = out[0]
        assert all(torch.equal(params[k], v) for k, v in
                   TensorDict.from_module(op.policy).items(True, True))

    def test_publish_checks_the_keys_and_a_step_waits_briefly(self):
        op = WeightsSource(q_actor())
        with pytest.raises(ValueError, match="do not match"):
            op.publish(torch.nn.Linear(2, 2))
        assert op.step({}) is None  # nothing published: returns after its short wait
        with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
            WeightsSource(lambda td: td)


class TestWeightsTokenContract(OpsContract):
    def make_operator(self) -> WeightsToken:
        source = WeightsSource(q_actor())
        source.publish()
        return WeightsToken(source)

    def feeds(self) -> dict[str, list[Any]]:
        return {"in": [0, 1, 2]}

    def test_the_weights_go_with_the_first_token_of_a_version(self):
        op = self.make_operator()
        out = run_operator(op, self.feeds())["out"]
        assert [v for v, _ in out] == [1, 1, 1]
        assert out[0][1] is not None and out[1][1] is None and out[2][1] is None
        op.weights.publish()
        assert op.step({"in": 3})["out"][0] == 2 and op.step({"in": 4})["out"][1] is None

    def test_from_policy_weights_a_copy_per_version(self):
        net = q_actor()
        weights = PolicyWeights(net)
        op = WeightsToken(weights)
        v0, p0 = op.step({"in": 0})["out"]
        assert v0 == 0 and p0 is not None and op.step({"in": 1})["out"] == (0, None)
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
        weights.publish(net)
        v1, p1 = op.step({"in": 2})["out"]
        first = next(iter(p0.keys(True, True)))
        assert v1 == 1 and torch.equal(p1[first], p0[first] + 1.0)
        with pytest.raises(TypeError, match="WeightsSource or PolicyWeights"):
            WeightsToken(net)


class TestWeightsSourceFollowingContract(OpsContract):
    def make_operator(self) -> WeightsSource:
        net = q_actor()
        weights = PolicyWeights(net)
        weights.publish(net)
        source = WeightsSource(weights)
        source.stop()
        return source

    def test_follows_the_shared_weights(self):
        net = q_actor()
        weights = PolicyWeights(net)
        source = WeightsSource(weights)
        assert source.step({}) is None  # nothing new yet
        weights.publish(net)
        weights.publish(net)
        version, params = source.step({})["weights"]
        assert version == 2 and source.version == 2 and source.current() == (2, params)
