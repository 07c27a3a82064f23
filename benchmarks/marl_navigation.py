"""MAPPO and IPPO on VMAS Navigation, streamrl beside TorchRL 0.14.1 at the budget of
TorchRL's multi-agent PPO tutorial (issue 21's learning acceptance).

Both sides train with the tutorial's settings (3 agents, 60 envs x 100 steps = 6,000 team
frames per batch, 5 batches = 30,000 frames, 30 epochs of minibatches of 400, lr 3e-4,
GAE(0.99, 0.9), clip 0.2, entropy 1e-4, gradient norm 1.0, 2 x 256 tanh ``MultiAgentMLP``
networks, shared parameters; MAPPO's critic centralised, IPPO's not), per seed:

- streamrl: ``pipelines/mappo_vmas.py`` / ``pipelines/ippo_vmas.py``;
- TorchRL: the tutorial's loop (``Collector``, ``ClipPPOLoss`` with the group's keys, GAE,
  a ``SamplerWithoutReplacement`` buffer), run by the peers' python (``--peers-python``,
  default ``/tmp/peers/bin/python``: ``pip install torchrl==0.14.1 vmas``; the same vmas
  version as streamrl's venv).

Printed per method and seed: the last batch's mean per-agent episode return (the tutorial's
``episode_reward_mean``; each batch holds exactly one episode per env), the final weights'
deterministic return (10 episodes, per agent) and the wall time.

    $ python benchmarks/marl_navigation.py --seeds 0,1,2
    $ python benchmarks/marl_navigation.py --frames 12000 --seeds 0 --no-peers
    $ python benchmarks/marl_navigation.py --no-peers --set num_envs=4 --frames 800
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))  # _peers, also when loaded from elsewhere

from _peers import default_peers_python, run_torchrl_script  # noqa: E402 (the script's folder)

from streamrl.cli import load_pipeline  # noqa: E402
from streamrl.train import field_overrides  # noqa: E402

METHODS = ("mappo", "ippo")

TORCHRL_SCRIPT = r'''
import sys, time
import torch
from tensordict.nn import TensorDictModule, set_composite_lp_aggregate
from tensordict.nn.distributions import NormalParamExtractor
from torchrl.collectors import Collector
from torchrl.data.replay_buffers import ReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.data.replay_buffers.storages import LazyTensorStorage
from torchrl.envs import RewardSum, TransformedEnv
from torchrl.envs.libs.vmas import VmasEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type
from torchrl.modules import MultiAgentMLP, ProbabilisticActor, TanhNormal
from torchrl.objectives import ClipPPOLoss, ValueEstimators

method, seed, frames, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(seed)
set_composite_lp_aggregate(False).set()
frames_per_batch, max_steps, n_agents = 6000, 100, 3
num_epochs, minibatch_size = 30, 400


def make_env(num_envs):
    return VmasEnv(scenario="navigation", num_envs=num_envs, continuous_actions=True,
                   max_steps=max_steps, device="cpu", seed=seed, n_agents=n_agents)


env = make_env(frames_per_batch // max_steps)
env = TransformedEnv(env, RewardSum(in_keys=[env.reward_key],
                                    out_keys=[("agents", "episode_reward")]))
n_obs = env.observation_spec["agents", "observation"].shape[-1]
n_act = env.full_action_spec[env.action_key].shape[-1]
policy = ProbabilisticActor(
    module=TensorDictModule(
        torch.nn.Sequential(
            MultiAgentMLP(n_agent_inputs=n_obs, n_agent_outputs=2 * n_act, n_agents=n_agents,
                          centralised=False, share_params=True, device="cpu", depth=2,
                          num_cells=256, activation_class=torch.nn.Tanh),
            NormalParamExtractor()),
        in_keys=[("agents", "observation")], out_keys=[("agents", "loc"), ("agents", "scale")]),
    spec=env.full_action_spec_unbatched,
    in_keys=[("agents", "loc"), ("agents", "scale")], out_keys=[env.action_key],
    distribution_class=TanhNormal,
    distribution_kwargs={"low": env.full_action_spec_unbatched[env.action_key].space.low,
                         "high": env.full_action_spec_unbatched[env.action_key].space.high},
    return_log_prob=True)
critic = TensorDictModule(
    MultiAgentMLP(n_agent_inputs=n_obs, n_agent_outputs=1, n_agents=n_agents,
                  centralised=method == "mappo", share_params=True, device="cpu", depth=2,
                  num_cells=256, activation_class=torch.nn.Tanh),
    in_keys=[("agents", "observation")], out_keys=[("agents", "state_value")])
collector = Collector(env, policy, device="cpu", storing_device="cpu",
                      frames_per_batch=frames_per_batch, total_frames=frames)
buffer = ReplayBuffer(storage=LazyTensorStorage(frames_per_batch, device="cpu"),
                      sampler=SamplerWithoutReplacement(), batch_size=minibatch_size)
loss_module = ClipPPOLoss(actor_network=policy, critic_network=critic, clip_epsilon=0.2,
                          entropy_coeff=1e-4, normalize_advantage=False)
loss_module.set_keys(reward=env.reward_key, action=env.action_key,
                     value=("agents", "state_value"), done=("agents", "done"),
                     terminated=("agents", "terminated"))
loss_module.make_value_estimator(ValueEstimators.GAE, gamma=0.99, lmbda=0.9)
optim = torch.optim.Adam(loss_module.parameters(), 3e-4)
t0 = time.perf_counter()
train_returns = []
for data in collector:
    shape = data.get_item_shape(("next", env.reward_key))
    for key in ("done", "terminated"):
        data.set(("next", "agents", key), data.get(("next", key)).unsqueeze(-1).expand(shape))
    with torch.no_grad():
        loss_module.value_estimator(data, params=loss_module.critic_network_params,
                                    target_params=loss_module.target_critic_network_params)
    buffer.extend(data.reshape(-1))
    for _ in range(num_epochs):
        for _ in range(frames_per_batch // minibatch_size):
            sub = buffer.sample()
            out = loss_module(sub)
            (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()
            torch.nn.utils.clip_grad_norm_(loss_module.parameters(), 1.0)
            optim.step()
            optim.zero_grad()
    collector.update_policy_weights_()
    done = data.get(("next", "agents", "done"))
    train_returns.append(data.get(("next", "agents", "episode_reward"))[done].mean().item())
wall = time.perf_counter() - t0
collector.shutdown()
eval_env = make_env(10)
eval_env.set_seed(10_000)
with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
    rollout = eval_env.rollout(max_steps, policy)
eval_return = rollout.get(("next", "agents", "reward")).sum(1).mean().item()
print(f"RESULT train_return {train_returns[-1]}")
print(f"RESULT eval_return {eval_return}")
print(f"RESULT wall_s {wall}")
'''


def run_streamrl(method: str, seed: int, frames: int, threads: int,
                 changed: dict | None = None) -> dict:
    """One run of the method's pipeline (``changed``: config fields set): the last batch's
    train return, the final eval."""
    module = load_pipeline(REPO / "pipelines" / f"{method}_vmas.py")
    config, _ = module.parse_args(["--seed", str(seed), "--frames", str(frames),
                                   "--threads", str(threads), "--eval-interval", str(10 ** 9),
                                   "--eval-episodes", "10"])
    config = dataclasses.replace(config, **(changed or {}))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = module.train(config, run_dir=Path(tmp))
        wall = time.perf_counter() - t0
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines()]
    curve = [row["train_return"] for row in rows if row.get("train_return") is not None]
    return {"train_return": curve[-1], "curve": curve, "eval_return": result.eval_return,
            "wall_s": wall}


def run_torchrl(python: str, method: str, seed: int, frames: int, threads: int) -> dict:
    """One run of TorchRL's tutorial loop in the peers' python (``RuntimeError`` with its
    note when it gives no figures)."""
    figures, note = run_torchrl_script(python, TORCHRL_SCRIPT, "torchrl_marl_navigation.py",
                                       [method, str(seed), str(frames), str(threads)],
                                       timeout=3600)
    if not figures:
        raise RuntimeError(f"the TorchRL run gave no figures: {note}")
    return figures


def peers_python(python: str) -> str | None:
    """``python`` when it imports torchrl and vmas, else ``None`` (said on stdout)."""
    check = (subprocess.run([python, "-c", "import torchrl, vmas"], capture_output=True)
             if os.path.exists(python) else None)
    if check is None or check.returncode != 0:
        print(f"(torchrl: {python} cannot import torchrl and vmas; its rows are skipped)")
        return None
    return python


def _mean(results: list[dict], key: str) -> float:
    return statistics.mean(r[key] for r in results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=30_000,
                        help="team frames per run, a multiple of 6,000 (the tutorial's 5 batches)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    parser.add_argument("--no-peers", action="store_true", help="streamrl only")
    parser.add_argument("--peers-python", default=default_peers_python())
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="a streamrl config field (e.g. num_envs=4); streamrl only: "
                             "with --no-peers")
    args = parser.parse_args(argv)
    mappo = load_pipeline(REPO / "pipelines" / "mappo_vmas.py")
    try:
        changed = field_overrides(mappo.MAPPOConfig, args.set)
    except ValueError as err:
        parser.error(f"--set: {err}")
    if changed and not args.no_peers:
        parser.error("--set changes streamrl's settings only, while TorchRL's loop keeps the "
                     "tutorial's: pass --no-peers with it")
    per_batch = mappo.MAPPOConfig(**changed).frames_per_batch
    if args.frames <= 0 or args.frames % per_batch:
        parser.error(f"--frames must be a positive multiple of the batch ({per_batch:,} "
                     f"frames), found {args.frames}")
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"--methods takes {', '.join(METHODS)}; found {', '.join(unknown)}")
    python = None if args.no_peers else peers_python(args.peers_python)
    print(f"VMAS navigation, 3 agents, {args.frames:,} team frames, seeds {seeds}; "
          "train = last batch's mean per-agent episode return, eval = final weights, "
          "deterministic, 10 episodes")
    print(f"{'method':18s} {'train per seed':>26s} {'train':>7s} {'eval per seed':>26s} "
          f"{'eval':>7s} {'wall s':>7s}")
    for method in methods:
        sides = [("streamrl", lambda s, m=method: run_streamrl(m, s, args.frames,
                                                               args.threads, changed))]
        if python is not None:
            sides.append(("torchrl", lambda s, m=method: run_torchrl(
                python, m, s, args.frames, args.threads)))
        for side, run in sides:
            results = [run(seed) for seed in seeds]
            train = " / ".join(f"{r['train_return']:.2f}" for r in results)
            final = " / ".join(f"{r['eval_return']:.2f}" for r in results)
            print(f"{method + ' ' + side:18s} {train:>26s} {_mean(results, 'train_return'):7.2f} "
                  f"{final:>26s} {_mean(results, 'eval_return'):7.2f} "
                  f"{_mean(results, 'wall_s'):7.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
