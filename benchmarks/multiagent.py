"""Multi-agent throughput (MAPPO layout), streamrl next to TorchRL 0.14 from the same run.

    flock /tmp/streamrl-heavy.lock python benchmarks/multiagent.py [--frames 30000]
        [--pz-frames 5000] [--updates 150] [--repeats 3] [--threads 1]
        [--peers-python /tmp/peers/bin/python] [--no-peers]

One workload, written against TorchRL's documented API (the layout of
``tests/torchrl_ports/scripts/mappo_vmas.py``), runs twice: in this process with ``torchrl``
replaced by ``streamrl`` in its imports, and as written in a subprocess of ``--peers-python``
(or ``$STREAMRL_PEERS_PYTHON``; default ``/tmp/peers/bin/python``; skipped with a note when it
has no torchrl). Both set ``torch.set_num_threads(--threads)``. ``--repeats`` rounds run
each library in turn (streamrl, then TorchRL), so that the machine's slower phases fall on
both; a row prints each library's best round, their ratio, and the median of the rounds'
ratios (``rounds``); a target is met when both ratios reach it. Rows:

- ``vmas-collect``: team frames/s (a team frame: one env step of all agents, the batch's
  ``numel()``) of a ``Collector`` (TorchRL 0.14's name of ``SyncDataCollector``; 6000 frames
  per batch) on ``VmasEnv`` Navigation, 3 agents, 60 vectorised envs, 100 max steps,
  continuous actions; the policy a
  ``MultiAgentMLP`` (shared parameters, decentralised, depth 2, 256 cells, tanh) +
  ``NormalParamExtractor`` + ``ProbabilisticActor(TanhNormal)``. ``--frames`` timed frames
  after a first, untimed batch.
- ``pettingzoo-collect``: team frames/s of a ``Collector`` (1000 frames per batch)
  on ``PettingZooWrapper(mpe2.simple_spread_v3.parallel_env(N=3, continuous_actions=True))``
  (one Python-stepped env: per-step overhead decides), the same policy with 64 cells.
  ``--pz-frames`` timed frames after a first, untimed batch.
- ``mappo-update``: MAPPO updates/s on one fixed VMAS batch of 6000 frames (GAE computed
  first, the shared done expanded to the agents): ``--updates`` minibatches of 400 drawn
  without replacement from a ``ReplayBuffer``, ``ClipPPOLoss`` with the group's keys and a
  centralised ``MultiAgentMLP`` critic (256 cells), backward, grad-norm clip 1.0, Adam step.

Targets (issue 21): streamrl >= TorchRL on every row, >= 3x on ``pettingzoo-collect``.
"""

from __future__ import annotations

import argparse
import sys

# the script's folder is on sys.path when it runs
from _peers import default_peers_python, round_ratios, run_torchrl_script, selected_rows

ROWS = {  # row -> (unit, target ratio over TorchRL)
    "vmas-collect": ("team-frames/s", 1.0),
    "pettingzoo-collect": ("team-frames/s", 3.0),
    "mappo-update": ("updates/s", 1.0),
}

# Written against TorchRL; streamrl runs it with ``from torchrl`` -> ``from streamrl``.
WORKLOAD = r'''
import sys, time
import torch
from tensordict.nn import TensorDictModule
from tensordict.nn.distributions import NormalParamExtractor
from torchrl.collectors import Collector  # SyncDataCollector before TorchRL 0.14
from torchrl.data.replay_buffers import ReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.data.replay_buffers.storages import LazyTensorStorage
from torchrl.envs.libs.pettingzoo import PettingZooWrapper
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.modules import MultiAgentMLP, ProbabilisticActor, TanhNormal
from torchrl.objectives import ClipPPOLoss, ValueEstimators

VMAS_BATCH, PZ_BATCH, MINIBATCH = 6000, 1000, 400


def vmas_env():
    return VmasEnv(scenario="navigation", num_envs=60, continuous_actions=True,
                   max_steps=100, n_agents=3, seed=0)


def pz_env():
    from mpe2 import simple_spread_v3

    env = PettingZooWrapper(simple_spread_v3.parallel_env(N=3, continuous_actions=True,
                                                          max_cycles=25))
    env.set_seed(0)
    return env


def mlp(env, group, outputs, cells, centralized):
    return MultiAgentMLP(
        n_agent_inputs=env.observation_spec[group, "observation"].shape[-1],
        n_agent_outputs=outputs, n_agents=len(env.group_map[group]),
        centralized=centralized, share_params=True, depth=2, num_cells=cells,
        activation_class=torch.nn.Tanh,
    )


def actor(env, group, cells):
    n_act = env.full_action_spec[env.action_key].shape[-1]
    net = torch.nn.Sequential(mlp(env, group, 2 * n_act, cells, False), NormalParamExtractor())
    module = TensorDictModule(net, in_keys=[(group, "observation")],
                              out_keys=[(group, "loc"), (group, "scale")])
    space = env.full_action_spec_unbatched[env.action_key].space
    return ProbabilisticActor(
        module=module, spec=env.action_spec_unbatched, in_keys=[(group, "loc"), (group, "scale")],
        out_keys=[env.action_key], distribution_class=TanhNormal,
        distribution_kwargs={"low": space.low, "high": space.high}, return_log_prob=True,
    )


def collect(make_env, group, cells, fpb, frames):
    """team frames/s over ``frames`` (whole batches) after a first, untimed batch"""
    torch.manual_seed(0)
    env = make_env()
    batches = max(1, -(-frames // fpb))
    collector = Collector(env, actor(env, group, cells), frames_per_batch=fpb,
                                  total_frames=fpb * (batches + 1))
    try:
        it = iter(collector)
        next(it)  # start-up
        t0, n = time.perf_counter(), 0
        for batch in it:
            n += batch.numel()
        return n / (time.perf_counter() - t0)
    finally:
        collector.shutdown()


def vmas_collect(frames):
    return collect(vmas_env, "agents", 256, VMAS_BATCH, frames)


def pettingzoo_collect(frames):
    return collect(pz_env, "agent", 64, PZ_BATCH, frames)


def mappo_update(updates):
    """MAPPO minibatch updates/s on one fixed batch"""
    torch.manual_seed(0)
    env = vmas_env()
    policy = actor(env, "agents", 256)
    critic = TensorDictModule(mlp(env, "agents", 1, 256, True),
                              in_keys=[("agents", "observation")],
                              out_keys=[("agents", "state_value")])
    collector = Collector(env, policy, frames_per_batch=VMAS_BATCH,
                                  total_frames=VMAS_BATCH)
    data = next(iter(collector))
    collector.shutdown()
    loss_module = ClipPPOLoss(actor_network=policy, critic_network=critic, clip_epsilon=0.2,
                              entropy_coeff=1e-4, normalize_advantage=False)
    loss_module.set_keys(reward=env.reward_key, action=env.action_key,
                         value=("agents", "state_value"), done=("agents", "done"),
                         terminated=("agents", "terminated"))
    loss_module.make_value_estimator(ValueEstimators.GAE, gamma=0.99, lmbda=0.9)
    for key in ("done", "terminated"):
        data.set(("next", "agents", key), data.get(("next", key)).unsqueeze(-1)
                 .expand(data.get_item_shape(("next", env.reward_key))))
    with torch.no_grad():
        loss_module.value_estimator(data, params=loss_module.critic_network_params,
                                    target_params=loss_module.target_critic_network_params)
    buffer = ReplayBuffer(storage=LazyTensorStorage(VMAS_BATCH),
                          sampler=SamplerWithoutReplacement(), batch_size=MINIBATCH)
    buffer.extend(data.reshape(-1))
    params = list(loss_module.parameters())
    optim = torch.optim.Adam(params, 3e-4)

    def update():
        losses = loss_module(buffer.sample())
        loss = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        optim.zero_grad()

    for _ in range(3):  # warm-up: the optimizer's state, first-call caches
        update()
    t0 = time.perf_counter()
    for _ in range(updates):
        update()
    return updates / (time.perf_counter() - t0)


def run(rows, frames, pz_frames, updates, repeats, threads, report):
    torch.set_num_threads(threads)
    work = {"vmas-collect": lambda: vmas_collect(frames),
            "pettingzoo-collect": lambda: pettingzoo_collect(pz_frames),
            "mappo-update": lambda: mappo_update(updates)}
    for row in rows:
        try:
            report(row, max(work[row]() for _ in range(repeats)))
        except Exception as err:
            print(f"SKIP {row} {type(err).__name__}: {err}", flush=True)


if __name__ == "__main__":
    rows, frames, pz_frames, updates, repeats, threads = sys.argv[1:]
    run(rows.split(","), int(frames), int(pz_frames), int(updates), int(repeats),
        int(threads), lambda row, value: print(f"RESULT {row} {value:.2f}", flush=True))
'''


def streamrl_workload() -> dict:
    """The workload's functions, with streamrl's imports."""
    source = WORKLOAD.replace("from torchrl.", "from streamrl.")
    namespace: dict = {"__name__": "streamrl_multiagent_workload"}
    exec(compile(source, "<multiagent workload (streamrl)>", "exec"), namespace)
    return namespace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=30000,
                        help="timed team frames of vmas-collect (whole batches of 6000)")
    parser.add_argument("--pz-frames", type=int, default=5000,
                        help="timed team frames of pettingzoo-collect (whole batches of 1000)")
    parser.add_argument("--updates", type=int, default=150, help="timed MAPPO updates")
    parser.add_argument("--repeats", type=int, default=3, help="rounds, each running both libraries in turn")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    parser.add_argument("--peers-python", default=default_peers_python())
    parser.add_argument("--no-peers", action="store_true", help="skip the TorchRL rows")
    parser.add_argument("--only", default=",".join(ROWS), help=f"comma-separated of {list(ROWS)}")
    args = parser.parse_args()
    rows = selected_rows(parser, args.only, ROWS)
    for name in ("frames", "pz_frames", "updates", "repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    print(f"MAPPO layout, {args.threads} torch thread(s), {args.repeats} rounds: vmas-collect "
          f"{args.frames} timed frames, pettingzoo-collect {args.pz_frames}, mappo-update "
          f"{args.updates} updates", flush=True)
    workload = streamrl_workload()
    # rounds alternate the libraries (streamrl, then TorchRL), so that a slower phase of the
    # machine falls on both sides of a round's ratio
    ours: dict[str, list[float]] = {row: [] for row in rows}
    theirs: dict[str, list[float]] = {row: [] for row in rows}
    for r in range(args.repeats):
        def report(row: str, value: float, r: int = r) -> None:
            ours[row].append(value)
            print(f"round {r + 1} streamrl {row:20s} {value:10.1f} {ROWS[row][0]}", flush=True)

        workload["run"](rows, args.frames, args.pz_frames, args.updates, 1, args.threads,
                        report)
        if args.no_peers:
            continue
        got, note = run_torchrl_script(
            args.peers_python, WORKLOAD, "torchrl_multiagent.py",
            [",".join(rows), str(args.frames), str(args.pz_frames), str(args.updates), "1",
             str(args.threads)])
        if note:
            print(f"(torchrl: {note})")
        for row, value in got.items():
            theirs[row].append(value)
            print(f"round {r + 1} torchrl  {row:20s} {value:10.1f} {ROWS[row][0]}", flush=True)
    print(f"\n{'row':20s} {'unit':14s} {'streamrl':>10s} {'torchrl':>10s} {'ratio':>7s} "
          f"{'rounds':>7s} {'target':>7s}")
    for row in rows:
        unit, target = ROWS[row]
        mine = f"{max(ours[row]):10.1f}" if ours[row] else f"{'n/a':>10s}"
        if ours[row] and len(theirs[row]) == len(ours[row]):
            ratio, median = round_ratios(ours[row], theirs[row])
            peer = (f"{max(theirs[row]):10.1f} {ratio:6.2f}x {median:6.2f}x {target:5.1f}x "
                    f"{'met' if min(ratio, median) >= target else 'MISSED'}")
        else:
            peer = f"{'n/a':>10s} {'':>7s} {'':>7s} {target:5.1f}x"
        print(f"{row:20s} {unit:14s} {mine} {peer}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
