"""The off-policy graph: collection, replay, learning, weight sync, evaluation and metrics,
running concurrently (the topology of DQN, SAC, TD3 ...)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from streamrl.data import (
    LazyTensorStorage,
    RandomSampler,
    SampleToInsertRatio,
    StalenessAwareSampler,
    TensorDictReplayBuffer,
    WindowSampler,
)
from streamrl.envs.transforms import CatFrames
from streamrl.graph import Graph, Process, Ray
from streamrl.ops._learner_half import LEARNER_CAPACITY, add_learner_half
from streamrl.ops.evaluator import Evaluator
from streamrl.ops.learner import Learner
from streamrl.ops.metrics_sink import MetricsSink
from streamrl.ops.pacer import Pacer
from streamrl.ops.policy_weights import PolicyWeights
from streamrl.ops.replay import ReplaySink, ReplaySource
from streamrl.ops.rollout import Rollout
from streamrl.ops.sample_budget import sample_budget
from streamrl.ops.weights_source import WeightsSource, WeightsToken

__all__ = [
    "OffPolicyGraph",
    "build_offpolicy_graph",
    "frame_ratio_buffer",
    "min_policy_lag",
    "ratio_buffer",
    "ratio_limiter",
]

VERSION_KEY = ("collector", "policy_version")
# FIFO capacities of the edges the policy-lag bound depends on (see min_policy_lag)
_SINK_CAPACITY = 2


def ratio_buffer(size: int, samples_per_insert: float, *, learning_starts: int,
                 sample_size: int, frames_per_batch: int,
                 timeout: float = 120.0,
                 max_policy_lag: int | None = None) -> TensorDictReplayBuffer:
    """A uniform replay buffer of ``size`` rows whose
    :class:`~streamrl.data.SampleToInsertRatio` limiter holds sampling until
    ``learning_starts`` frames are stored, then keeps ``samples_per_insert`` sampled rows per
    collected frame, for a rollout that inserts ``frames_per_batch`` frames per message and a
    replay source that samples ``sample_size`` rows per message.

    The slack either way is one sampled message plus one collected batch, the least that
    cannot deadlock. ``timeout`` (seconds) bounds a wait in the limiter during which nothing
    is inserted or sampled: a healthy run never waits that long (a slow collector filling
    ``learning_starts`` keeps inserting), and a stuck one (a failed operator on the other
    side) gets an error instead of a hang.

    ``max_policy_lag`` (an int >= 0) bounds how many policy versions behind the learner a
    sampled row may be: the buffer samples uniformly among the rows whose
    ``("collector", "policy_version")`` is within that many versions of the learner's (a
    :class:`~streamrl.data.StalenessAwareSampler` with ``max_staleness=max_policy_lag``;
    :func:`build_offpolicy_graph` keeps its ``consumer_version`` at the learner's version).
    Each draw then costs one comparison over the stored rows (about 2 ms for 1M rows).
    ``None``: plain uniform replay.

    >>> rb = ratio_buffer(1000, 2.0, learning_starts=100, sample_size=64, frames_per_batch=32)
    >>> rb.rate_limiter.can_sample(64)  # nothing collected yet
    False
    >>> ratio_buffer(1000, 2.0, learning_starts=100, sample_size=64, frames_per_batch=32,
    ...              max_policy_lag=8).sampler.max_staleness
    8
    """
    limiter = ratio_limiter(samples_per_insert, learning_starts=learning_starts,
                            sample_size=sample_size, frames_per_batch=frames_per_batch)
    return TensorDictReplayBuffer(storage=LazyTensorStorage(size),
                                  sampler=_lag_sampler(max_policy_lag),
                                  rate_limiter=limiter, rate_limit_timeout=timeout)


def ratio_limiter(samples_per_insert: float, *, learning_starts: int, sample_size: int,
                  frames_per_batch: int) -> SampleToInsertRatio:
    """The limiter of :func:`ratio_buffer` (counts in stored rows): sampling held until
    ``learning_starts`` rows are in, then ``samples_per_insert`` sampled rows per inserted
    one, within one sampled message plus one collected batch of slack."""
    return SampleToInsertRatio(
        samples_per_insert, min_size_to_sample=learning_starts,
        error_buffer=sample_size + frames_per_batch * samples_per_insert,
        max_sample_batch=sample_size, max_insert_batch=frames_per_batch,
    )


def _lag_sampler(max_policy_lag: int | None) -> StalenessAwareSampler | None:
    """The sampler of :func:`ratio_buffer`: uniform over the rows at most ``max_policy_lag``
    versions behind the learner, ``None`` (plain uniform) without a bound."""
    if max_policy_lag is None:
        return None
    if isinstance(max_policy_lag, bool) or not isinstance(max_policy_lag, int) or (
        max_policy_lag < 0
    ):
        raise ValueError(f"max_policy_lag must be an int >= 0 or None, got {max_policy_lag!r}")
    return StalenessAwareSampler(max_staleness=max_policy_lag, staleness_weight_fn=_uniform,
                                 version_key=VERSION_KEY)


def frame_ratio_buffer(size: int, samples_per_insert: float, *, frame_stack: CatFrames,
                       learning_starts: int, sample_size: int, frames_per_batch: int,
                       timeout: float = 120.0, max_policy_lag: int | None = None,
                       traj_key: Any = ("collector", "traj_ids")) -> TensorDictReplayBuffer:
    """:func:`ratio_buffer` for frame stacks (Atari): each frame is stored once.

    The collected rows hold stacks of ``frame_stack.N`` frames along ``frame_stack.dim``
    under ``frame_stack.in_keys`` (the root and ``"next"`` keys, e.g. ``["pixels", ("next",
    "pixels")]``, as a :class:`~streamrl.envs.transforms.CatFrames` on the env makes them);
    the buffer keeps the newest frame of each, and at sampling rebuilds the stacks from the
    frames before it in the same trajectory (``traj_key``; zero padding at a trajectory's
    start, as the env's CatFrames pads after a reset) with the replay transform of
    :meth:`~streamrl.envs.transforms.CatFrames.make_rb_transform_and_sampler`. The windows
    end at rows drawn uniformly, or within ``max_policy_lag`` versions of the learner
    (:class:`~streamrl.data.WindowSampler` over a
    :class:`~streamrl.data.StalenessAwareSampler`). A trajectory's rows must follow each
    other in the storage, as those of a one-env rollout do (the batches of several envs are
    stored env after env: each batch would then restart the stacks with padding).

    Counts are in stored rows: a draw of ``sample_size * N`` rows (what a
    :class:`~streamrl.ops.ReplaySource` of this buffer asks for) gives ``sample_size``
    transitions, and ``samples_per_insert`` (sampled transitions per collected frame) is
    kept as ``N * samples_per_insert`` rows per frame.

    >>> import torch
    >>> from tensordict import TensorDict
    >>> from streamrl.envs.transforms import CatFrames
    >>> stack = CatFrames(2, -1, in_keys=["obs", ("next", "obs")])
    >>> rb = frame_ratio_buffer(100, 1.0, frame_stack=stack, learning_starts=4,
    ...                         sample_size=3, frames_per_batch=4)
    >>> f = torch.arange(5.0)[:, None]  # frames 0..4 of one trajectory, stacked by 2
    >>> obs = torch.cat([torch.cat([f.new_zeros(1, 1), f[:-1]]), f], -1)  # [[0, 0], [0, 1] ...
    >>> nxt = torch.cat([f, f + 1], -1)
    >>> _ = rb.extend(TensorDict({"obs": obs[:4], "next": {"obs": nxt[:4]},
    ...     "collector": {"traj_ids": torch.zeros(4, dtype=torch.long)}}, [4]))
    >>> rb.storage[0]["obs"].tolist()  # one frame per row
    [0.0]
    >>> s = rb.sample(3 * 2)
    >>> s.batch_size, bool((s["next", "obs"][:, 0] == s["obs"][:, 1]).all())
    (torch.Size([3]), True)
    """
    if not isinstance(frame_stack, CatFrames):
        raise TypeError(f"frame_stack must be a CatFrames, found {type(frame_stack).__name__}")
    n = frame_stack.N
    transform, windows = frame_stack.make_rb_transform_and_sampler(sample_size)
    sampler = WindowSampler(_lag_sampler(max_policy_lag) or RandomSampler(), n,
                            traj_key=traj_key, init_key=windows.init_key)
    limiter = ratio_limiter(n * samples_per_insert, learning_starts=learning_starts,
                             sample_size=n * sample_size, frames_per_batch=frames_per_batch)
    rb = TensorDictReplayBuffer(storage=LazyTensorStorage(size), sampler=sampler,
                                transform=transform, rate_limiter=limiter,
                                rate_limit_timeout=timeout)
    rb.append_transform(_NewestFrame(frame_stack.in_keys, frame_stack.dim), invert=True)
    return rb


class _NewestFrame:
    """Write transform of :func:`frame_ratio_buffer`: the newest frame of each stack."""

    def __init__(self, keys: Sequence[Any], dim: int) -> None:
        self.keys, self.dim = list(keys), dim

    def __call__(self, data: Any) -> Any:
        data = data.clone(False)  # the rollout's batch also goes to the metrics: no writes
        for key in self.keys:
            value = data.get(key)
            data.set(key, value.narrow(self.dim, value.shape[self.dim] - 1, 1))
        return data


def _uniform(staleness: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(staleness)


@dataclass
class OffPolicyGraph:
    """What :func:`build_offpolicy_graph` made: the graph, and the pieces a driver reads
    (``learner.updates``, ``metrics.evaluations``), closes (``buffer``) or saves
    (:meth:`checkpoint`)."""

    graph: Graph
    learner: Learner
    buffer: Any
    metrics: MetricsSink
    weights: PolicyWeights
    saved: dict[str, Any]

    def checkpoint(self, config: Any) -> dict[str, Any]:
        """Everything a resumed run needs: ``pipeline`` (the graph's name), the state of each
        ``saved`` piece, of the learner and of the buffer (its limiter counters included),
        ``config`` (a dataclass, as a dict), ``frames`` collected, ``updates`` made and the
        ``policy_version`` published (a resumed run counts on from it)."""
        return {
            "pipeline": self.graph.name,
            **{key: piece.state_dict() for key, piece in self.saved.items()},
            "learner": self.learner.state_dict(),
            "buffer": self.buffer.state_dict(),
            "config": dataclasses.asdict(config),
            "frames": self.buffer.rate_limiter.inserts,
            "updates": self.learner.updates,
            "policy_version": self.weights.version,
        }


def build_offpolicy_graph(
    name: str,
    make_env: Callable[[], Any],
    policy: nn.Module,
    learner: Learner,
    buffer: Any,
    *,
    frames: int,
    frames_per_batch: int,
    sample_size: int,
    make_eval_env: Callable[[], Any],
    eval_interval: int | Sequence[int],
    eval_seed: int | None,
    seed: int,
    saved: Mapping[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
    exploration: Sequence[Any] = (),
    extra_metrics: Mapping[str, Callable[[], Any]] | None = None,
    rollout_placement: str = "process",
    ray_address: str | None = None,
    run_dir: Path | None = None,
    columns: Sequence[str] | None = None,
    progress: bool = False,
    logger: str = "none",
    lockstep: bool = False,
    return_key: Any = None,
    init_random_frames: int = 0,
    rollouts: int = 1,
) -> OffPolicyGraph:
    """The graph that collects, stores, samples, learns, publishes, evaluates and logs::

        rollout --> replay_sink ==[buffer + rate limiter]==> replay_source --> learner
           |                                                                     |
           +--> metrics <------------------------- weight_sync [--> extras] <----+
                   ^                                     | (latest-value edge)
                   +------------- evaluator <------------+ (snapshots)

    ``make_env`` builds the rollout's env (in a worker process with ``rollout_placement=
    "process"``, on a Ray actor with ``"ray"``: of the cluster ``ray_address`` names, or
    ``RAY_ADDRESS``; else on the event loop), which plays ``policy`` as published by the
    ``weight_sync`` after each learner message through a :class:`PolicyWeights` (shared
    memory) and sends ``frames_per_batch`` frames per message into ``buffer`` (a replay
    buffer with a rate limiter, e.g. :func:`ratio_buffer`). The replay source draws
    ``sample_size`` rows per message, exactly the number of messages the limiter grants for
    the budget (:func:`sample_budget`), so the graph ends by itself: the rollout stops after
    ``frames`` frames in all (rounded up to whole batches), the learner finishes its last
    updates, and the final weights are published and evaluated.

    Collection goes on from the frames the buffer's limiter has counted, and evaluation from
    the learner's update count: with ``state`` (a checkpoint from
    :meth:`OffPolicyGraph.checkpoint`), the ``saved`` pieces, the learner and the buffer are
    restored first, so the run continues where the checkpoint ended (the rollout is seeded
    with ``seed`` plus the frames collected). ``saved`` names the pipeline's own pieces with
    ``state_dict``/``load_state_dict`` (networks, loss, optimizer, target updater).

    The evaluator plays ``make_eval_env``'s envs (reset with ``eval_seed``) with the weights
    of the first publication at or after every multiple of ``eval_interval`` learner updates
    (or of each count in it, when it is a sequence), and with the final weights. Each is a
    snapshot (:class:`WeightSync`'s ``snapshot`` port, on a FIFO edge): the learner goes on
    while it is played, and an evaluation is of one set of weights, never of weights that
    change mid-episode. Each is reported at the frames collected for those weights: the
    fewest collected frames (in whole batches) for which the limiter grants that many
    updates, whatever the rollout had collected by the time the evaluation ran. An
    evaluation slower than the learner's progress to the next point holds the learner back
    (at most two snapshots wait). Before each publication,
    every module in ``exploration`` is stepped by the frames collected since the previous
    one (``module.step(frames)``, e.g. an ``EGreedyModule``'s epsilon schedule), and each of
    ``extra_metrics`` (a name and a function of no arguments) is added to the learner's
    metrics row. The metrics sink writes ``columns`` into ``run_dir`` (nothing when
    ``None``), also through the ``logger`` of :class:`MetricsSink` (``"tensorboard"``,
    ``"csv"``, ``"wandb"`` or ``"none"``), and shows a progress bar with ``progress``;
    ``train_return`` is read from ``return_key`` at each episode's end when given (see
    :class:`MetricsSink`).

    The first ``init_random_frames`` frames of the run (counted from its start, also across a
    resume) take uniformly random actions from the env's action spec instead of the policy's
    (SB3's off-policy algorithms do so until ``learning_starts``).

    With ``lockstep=True`` a :class:`Pacer` fed by the publications gates the rollout (the
    order of SB3's off-policy algorithms): each batch waits for the updates the limiter grants
    for the frames before it, so it is collected with exactly those weights and every sample
    is drawn from the same buffer contents run after run. Training then no longer depends on
    thread timing; collection and learning overlap
    only within the limiter's slack.

    **Policy lag.** Every row carries the version that collected it, and the metrics report,
    per learner message, ``staleness`` (the mean lag of its rows, in published versions) and
    ``staleness_max`` (its oldest row's). A ``buffer`` whose sampler bounds the lag (from
    ``ratio_buffer(..., max_policy_lag=L)``) makes the graph enforce it: each draw holds only
    rows at most ``L`` versions behind the version the learner trains it with, and the
    learner waits for fresh rows when there are none. ``L`` must be at least
    :func:`min_policy_lag` for this graph (else ``ValueError``): below it, learner and
    collector could wait on each other.

    **Several rollouts.** ``rollouts=N`` (free-running on Ray only: ``rollout_placement=
    "ray"``, not ``lockstep``, no policy-lag bound) collects with N rollouts named
    ``rollout0``... (one actor each, wherever the cluster has a CPU), all feeding the one
    replay sink: the batches are shared out among them (whole batches; seeds and
    ``init_random_frames`` too), their trajectory ids are interleaved
    (``local id * N + index``), and each new weights version goes into Ray's object store
    once for all of them.

    Raises ``ValueError`` when the restored buffer has already collected ``frames``.
    """
    if rollout_placement not in _ROLLOUT_PLACEMENTS:
        raise ValueError(f"rollout_placement must be one of {_ROLLOUT_PLACEMENTS}, found "
                         f"{rollout_placement!r}")
    if isinstance(init_random_frames, bool) or not isinstance(init_random_frames, int) or (
        init_random_frames < 0
    ):
        raise ValueError(f"init_random_frames must be an int >= 0, found {init_random_frames!r}")
    if isinstance(rollouts, bool) or not isinstance(rollouts, int) or rollouts < 1:
        raise ValueError(f"rollouts must be an int >= 1, found {rollouts!r}")
    if rollouts > 1 and (rollout_placement != "ray" or lockstep):
        raise ValueError(f"rollouts={rollouts} needs free-running rollouts on Ray "
                         f"(rollout_placement='ray', lockstep=False), found rollout_placement="
                         f"{rollout_placement!r}, lockstep={lockstep!r}")
    if not isinstance(learner, Learner):
        raise TypeError(f"learner must be a Learner, found {type(learner).__name__}")
    if getattr(buffer, "rate_limiter", None) is None:
        raise ValueError(f"buffer must have a rate limiter that bounds sampling by inserts "
                         f"(e.g. ratio_buffer(...)), found {type(buffer).__name__} without one")
    saved = dict(saved or {})
    if state is not None:
        for key, piece in (*saved.items(), ("learner", learner), ("buffer", buffer)):
            piece.load_state_dict(state[key])
    limiter = buffer.rate_limiter
    done = int(limiter.inserts)
    remaining = frames - done
    if remaining <= 0:
        raise ValueError(f"the checkpoint is at {done} frames, already at the budget "
                         f"frames={frames}; pass a larger --frames")
    total = done + math.ceil(remaining / frames_per_batch) * frames_per_batch
    batches = (total - done) // frames_per_batch
    schedule = None
    if lockstep:
        schedule = [sample_budget(limiter, done + b * frames_per_batch, sample_size)
                    for b in range(batches)]
    lag = _lag_bound(buffer)
    if rollouts > batches:
        raise ValueError(f"rollouts={rollouts} is more than the {batches} batches of "
                         f"{frames_per_batch} frames left to collect")
    if lag is not None and rollouts > 1:
        raise ValueError(f"a policy-lag bound (max_policy_lag={lag}) is kept for one rollout "
                         f"only, found rollouts={rollouts}")
    if lag is not None:
        least = min_policy_lag(
            limiter, frames_per_batch=frames_per_batch, sample_size=sample_size,
            schedule=None if schedule is None else
            [*schedule, sample_budget(limiter, total, sample_size)],
        )
        if lag < least:
            raise ValueError(
                f"max_policy_lag={lag} is below what this graph can keep without stalling "
                f"({least} versions for {frames_per_batch} frames per batch, "
                f"{sample_size} rows per sample{', lockstep' if lockstep else ''}); "
                f"pass max_policy_lag >= {least}"
            )
    version = 0 if state is None else int(state.get("policy_version", 0))
    weights = PolicyWeights(policy, version=version)
    metrics = MetricsSink(run_dir, columns=columns, total_frames=total, progress=progress,
                          desc=name, logger=logger, return_key=return_key,
                          resume_at=None if state is None else done)
    metrics.frames = done
    # a frame-stack buffer draws a window of rows per transition the learner gets
    sampler = getattr(buffer, "sampler", None)
    window = sampler.window if isinstance(sampler, WindowSampler) else 1
    per_message = learner.updates_per_batch(max(1, sample_size // window))
    frames_for = _FramesFor(limiter, done=done, batches=batches,
                            frames_per_batch=frames_per_batch, sample_size=sample_size,
                            updates=learner.updates, updates_per_message=per_message)
    evaluator = Evaluator(make_eval_env, weights, seed=eval_seed, interval=None,
                          frames=frames_for)

    g = Graph(name)
    remote = rollout_placement == "ray"  # no shared memory: the weights go as messages
    random_frames = max(0, init_random_frames - done)
    nodes = []
    for i in range(rollouts):
        collect = Rollout(make_env, copy.deepcopy(policy) if remote else weights,
                          frames_per_batch=frames_per_batch,
                          total_frames=_share(batches, rollouts, i) * frames_per_batch,
                          seed=seed + done + i, gated=lockstep,
                          init_random_frames=_share(random_frames, rollouts, i),
                          weights_port=remote, worker_index=i, num_workers=rollouts)
        collect.version = version
        if state is not None:
            # a resumed run starts new episodes: their ids follow the stored ones, so that no
            # replay window joins a new episode to a stored trajectory
            collect.traj_ids = {"next_id": _next_traj_id(buffer)}
        nodes.append(g.add(collect, name="rollout" if rollouts == 1 else f"rollout{i}",
                           placement=_rollout_placement(rollout_placement,
                                                        free=schedule is None,
                                                        address=ray_address)))
    rollout = nodes[0]
    sink = g.add(ReplaySink(buffer), name="replay_sink", placement="thread")
    source = g.add(ReplaySource(buffer, sample_size,
                                num_batches=sample_budget(limiter, total, sample_size),
                                first_version=None if lag is None else version,
                                timeout=buffer.rate_limit_timeout),
                   name="replay_source", placement="thread")
    published, sink_node = add_learner_half(
        g, source, learner, weights, policy, evaluator, metrics, eval_interval=eval_interval,
        before_publish=_stepper(exploration, limiter), extra_metrics=extra_metrics)
    for node in nodes:
        g.connect(node, sink, capacity=_SINK_CAPACITY)
        g.connect(node, sink_node["collector"], capacity=4)
    if schedule is not None:
        pacer = g.add(Pacer(schedule), name="pacer")
        g.connect(published, pacer)
        if remote:  # each token carries the weights it must be collected with
            token = g.add(WeightsToken(weights), name="weights")
            g.connect(pacer, token, capacity=batches).connect(token, rollout["trigger"])
        else:
            g.connect(pacer, rollout["trigger"], capacity=batches)
    elif remote:  # free-running: the newest weights on a latest-value edge
        follow = g.add(WeightsSource(weights), name="weights", placement="thread")
        for node in nodes:  # one object-store copy of each version for all of them
            g.connect(follow, node["weights"], kind="latest")
    return OffPolicyGraph(g, learner, buffer, metrics, weights, saved)


_ROLLOUT_PLACEMENTS = ("process", "inline", "ray")


def _share(n: int, parts: int, i: int) -> int:
    """Part ``i`` of ``n`` shared out among ``parts`` as evenly as whole numbers allow."""
    return n // parts + (1 if i < n % parts else 0)


#: how many times a free-running rollout on a Ray actor is replaced when its actor dies
RAY_ROLLOUT_RESTARTS = 3


def _rollout_placement(name: str, free: bool, address: str | None = None) -> Any:
    """The rollout's placement: a worker process, the event loop, or a Ray actor (1 CPU,
    items to and from it pushed and pulled directly; Ray is started with ``ray.init()``,
    which joins the cluster ``RAY_ADDRESS`` names, if it is not running yet, or with
    ``address``: ``"local"``, ``"auto"``, ``HOST:PORT``). A
    free-running rollout on Ray is replaced when its actor dies (``RAY_ROLLOUT_RESTARTS``
    times), continuing from its state after the last batch received. Its batches are read
    on the driver in place in Ray's object store (``zero_copy``): the replay sink copies
    their rows into the buffer's storage, and the metrics only read them."""
    if name == "process":
        return Process()
    if name == "ray":
        restart: dict[str, Any] = (
            {"on_failure": "restart", "max_restarts": RAY_ROLLOUT_RESTARTS} if free else {})
        return Ray(num_cpus=1, direct=True, address=address, zero_copy=True, **restart)
    return "inline"


class _FramesFor:
    """The frames collected for the weights of an update count: the fewest frames, in whole
    batches of ``frames_per_batch`` after ``done``, whose inserts ``limiter`` (its counters
    as they were when the graph was built) grants the messages that make those updates
    (``updates`` were made before; each message makes ``updates_per_message``). Counts past
    the budget's grant give the budget's frames."""

    def __init__(self, limiter: Any, *, done: int, batches: int, frames_per_batch: int,
                 sample_size: int, updates: int, updates_per_message: int) -> None:
        self.limiter = copy.copy(limiter)  # plain counters: the run's inserts do not move it
        self.done, self.batches, self.frames_per_batch = done, batches, frames_per_batch
        self.sample_size, self.updates = sample_size, updates
        self.per_message = updates_per_message

    def _grant(self, batches: int) -> int:
        inserts = self.done + batches * self.frames_per_batch
        return sample_budget(self.limiter, inserts, self.sample_size)

    def __call__(self, updates: int) -> int:
        need = math.ceil(max(0, updates - self.updates) / self.per_message)
        lo, hi = -1, self.batches  # grant(hi) >= need, or hi is the budget
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._grant(mid) >= need:
                hi = mid
            else:
                lo = mid
        return self.done + hi * self.frames_per_batch


def _next_traj_id(buffer: Any) -> int:
    """One more than the largest ``("collector", "traj_ids")`` the buffer holds (0 when it
    holds none)."""
    storage = getattr(buffer, "storage", None)
    if storage is None or not len(storage) or not callable(getattr(storage, "column", None)):
        return 0
    try:
        ids = storage.column(("collector", "traj_ids"))
    except (KeyError, TypeError):
        return 0
    return int(ids.max()) + 1


def _lag_bound(buffer: Any) -> int | None:
    """The buffer's ``max_policy_lag`` (its StalenessAwareSampler's ``max_staleness``), or
    ``None`` when sampling is not bounded by policy lag."""
    sampler = getattr(buffer, "sampler", None)
    if isinstance(sampler, WindowSampler):  # frame windows whose ends bound the lag
        sampler = sampler.sampler
    if not isinstance(sampler, StalenessAwareSampler) or sampler.max_staleness < 0:
        return None
    key = sampler.version_key
    if (key if isinstance(key, tuple) else (key,)) != VERSION_KEY:
        raise ValueError(f"the buffer's StalenessAwareSampler reads {key!r}; the rollout "
                         f"stamps versions at {VERSION_KEY!r}")
    return sampler.max_staleness


def min_policy_lag(limiter: Any, *, frames_per_batch: int, sample_size: int,
                   schedule: Sequence[int] | None = None) -> int:
    """The least ``max_policy_lag`` an off-policy graph keeps without stalling, for a
    :class:`~streamrl.data.SampleToInsertRatio` ``limiter``, a rollout sending
    ``frames_per_batch`` frames per batch and a replay source drawing ``sample_size`` rows
    per learner message (one publication each).

    Below it, the learner could wait for fresher data while the collector waits for the
    learner (the limiter's ratio, or the lockstep pacer). ``schedule``: in lockstep, the
    publications each batch waits for, followed by the number of messages the whole budget
    grants; the bound is then exact: the most messages one batch's data must serve, less
    one. Otherwise the collector runs free within the limiter's window, and the bound is a
    worst case over thread timing: the messages that one batch plus those queued between
    rollout and buffer grant, the limiter's error window, and the messages drawn but not yet
    published.

    >>> from streamrl.data import SampleToInsertRatio
    >>> lim = SampleToInsertRatio(2.0, min_size_to_sample=100, error_buffer=128,
    ...                           max_sample_batch=64, max_insert_batch=32)
    >>> min_policy_lag(lim, frames_per_batch=32, sample_size=64, schedule=[0, 0, 4, 5, 6])
    3
    >>> min_policy_lag(lim, frames_per_batch=32, sample_size=64)
    16
    """
    if schedule is not None:
        steps = list(schedule)
        return max([0, *(b - a - 1 for a, b in itertools.pairwise(steps))])
    for name in ("samples_per_insert", "max_diff", "min_diff"):
        if not hasattr(limiter, name):
            raise TypeError(f"a policy-lag bound needs a SampleToInsertRatio limiter, found "
                            f"{type(limiter).__name__}")
    per_batch = frames_per_batch * limiter.samples_per_insert
    window = limiter.max_diff - limiter.min_diff
    queued = _SINK_CAPACITY + 3  # on the edge, in the sink, in the rollout's hands, the last
    unpublished = 2 * LEARNER_CAPACITY + 3  # on both edges, in source, learner and sync
    return math.ceil((queued * per_batch + window) / sample_size) + unpublished


def _stepper(modules: Sequence[Any], limiter: Any) -> Callable[[], None] | None:
    """Steps each module by the frames the limiter counted since the last call (``None``
    when there is nothing to step)."""
    if not modules:
        return None
    for module in modules:
        if not callable(getattr(module, "step", None)):
            raise TypeError(f"exploration modules need step(frames), found "
                            f"{type(module).__name__}")
    stepped = [limiter.inserts]

    def step() -> None:
        inserted = limiter.inserts
        for module in modules:
            module.step(inserted - stepped[0])
        stepped[0] = inserted

    return step
