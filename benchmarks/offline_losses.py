"""IQL and CQL gradient updates per second: streamrl against TorchRL 0.14.1, in one run.

Usage::

    flock /tmp/streamrl-heavy.lock python benchmarks/offline_losses.py \
        [--peers-python /tmp/peers/bin/python] [--seconds 10] [--rounds 3]

One update is what an offline learner does per batch: the loss's forward on a batch of
``--batch`` transitions (default 256), ``backward`` of the summed training losses (IQL: actor,
Q-value and value; CQL: actor, Q-value, conservative and temperature losses), one Adam step
over every parameter and a soft target update. The networks are HalfCheetah-sized by default
(17-dim observations, 6-dim actions, MLPs of two ``--hidden`` (256) layers, a TanhNormal
policy, twin critics); CQL samples ``num_random=10`` actions per state, TorchRL's default.

Each library runs in its own subprocess with the same script (streamrl with this interpreter,
TorchRL with ``--peers-python`` or ``STREAMRL_PEERS_PYTHON``), one torch thread each
(``--threads``), in alternating rounds; the table gives the median over the rounds. Without
the peer interpreter the TorchRL rows are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: runs in either interpreter: python -c WORKER LIB LOSS SECONDS BATCH HIDDEN THREADS
WORKER = r"""
import importlib, json, sys, time, warnings
import torch
from tensordict import TensorDict
from tensordict.nn import NormalParamExtractor, TensorDictModule
warnings.filterwarnings("ignore")
lib, name = sys.argv[1], sys.argv[2]
seconds, batch, hidden, threads = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(threads)
torch.manual_seed(0)
modules = importlib.import_module(lib + ".modules")
objectives = importlib.import_module(lib + ".objectives")
OBS, ACT = 17, 6
cells = [hidden, hidden]
actor = modules.ProbabilisticActor(
    TensorDictModule(torch.nn.Sequential(
        modules.MLP(in_features=OBS, out_features=2 * ACT, num_cells=cells),
        NormalParamExtractor()), ["observation"], ["loc", "scale"]),
    in_keys=["loc", "scale"], distribution_class=modules.TanhNormal)
qvalue = modules.ValueOperator(modules.MLP(in_features=OBS + ACT, out_features=1, num_cells=cells),
                               in_keys=["observation", "action"])
if name == "IQL":
    value = modules.ValueOperator(modules.MLP(in_features=OBS, out_features=1, num_cells=cells),
                                  in_keys=["observation"])
    loss = objectives.IQLLoss(actor, qvalue, value, temperature=3.0, expectile=0.7)
    terms = ["loss_actor", "loss_qvalue", "loss_value"]
else:
    loss = objectives.CQLLoss(actor, qvalue, target_entropy=-float(ACT))
    terms = ["loss_actor", "loss_qvalue", "loss_cql", "loss_alpha"]
loss.make_value_estimator(gamma=0.99)
updater = objectives.SoftUpdate(loss, tau=0.005)
optim = torch.optim.Adam(loss.parameters(), lr=3e-4)
g = torch.Generator().manual_seed(1)
done = torch.rand(batch, 1, generator=g) < 0.05
data = TensorDict({
    "observation": torch.randn(batch, OBS, generator=g),
    "action": torch.rand(batch, ACT, generator=g) * 1.8 - 0.9,
    "next": {"observation": torch.randn(batch, OBS, generator=g),
             "reward": torch.randn(batch, 1, generator=g), "done": done,
             "terminated": done.clone()}}, [batch])

def update():
    out = loss(data.clone(False))
    total = sum(out[k] for k in terms)
    optim.zero_grad(set_to_none=True)
    total.backward()
    optim.step()
    updater.step()
    return total

for _ in range(5):
    update()
n, t0 = 0, time.perf_counter()
while True:
    update()
    n += 1
    elapsed = time.perf_counter() - t0
    if elapsed >= seconds and n >= 3:
        break
version = getattr(importlib.import_module(lib), "__version__", "")
print(json.dumps({"lib": lib, "loss": name, "updates_per_s": n / elapsed, "updates": n,
                  "version": version}))
"""


def run_worker(python: str, lib: str, loss: str, args: argparse.Namespace
               ) -> tuple[dict | None, str | None]:
    """One measurement in a subprocess: the worker's JSON reading, or an error line."""
    env = dict(os.environ)
    if lib == "streamrl":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [python, "-c", WORKER, lib, loss, str(args.seconds), str(args.batch), str(args.hidden),
           str(args.threads)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=120 + 10 * args.seconds)
    except (OSError, subprocess.TimeoutExpired) as err:
        return None, f"{lib} {loss}: {err}"
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return None, f"{lib} {loss} failed: {tail[0]}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def summarize(readings: dict[tuple[str, str], list[float]]) -> list[str]:
    """The table's lines: median updates/s per (library, loss) and streamrl / TorchRL.

    >>> summarize({("streamrl", "IQL"): [30.0, 50.0, 40.0], ("torchrl", "IQL"): [20.0]})[1]
    'IQL   streamrl        40.0 upd/s   2.00x TorchRL'
    """
    lines = [f"{'loss':<5} {'library':<10} {'median':>10}       {'ratio':>6}"]
    for loss in ("IQL", "CQL"):
        ours = readings.get(("streamrl", loss))
        peer = readings.get(("torchrl", loss))
        for lib, values in (("streamrl", ours), ("torchrl", peer)):
            if not values:
                continue
            med = statistics.median(values)
            ratio = ""
            if lib == "streamrl" and peer:
                ratio = f"  {med / statistics.median(peer):.2f}x TorchRL"
            lines.append(f"{loss:<5} {lib:<10} {med:>10.1f} upd/s{ratio}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-python", default=os.environ.get("STREAMRL_PEERS_PYTHON"))
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per reading")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--losses", default="IQL,CQL")
    args = parser.parse_args(argv)
    losses = [name for name in args.losses.split(",") if name]
    unknown = sorted(set(losses) - {"IQL", "CQL"})
    if unknown:
        parser.error(f"--losses takes IQL and/or CQL, found {unknown}")
    libs = [("streamrl", sys.executable)]
    notes = []
    if args.peers_python:
        libs.append(("torchrl", args.peers_python))
    else:
        notes.append("TorchRL rows skipped: pass --peers-python or set STREAMRL_PEERS_PYTHON")
    readings: dict[tuple[str, str], list[float]] = {}
    versions = {}
    for _ in range(args.rounds):
        for loss in losses:
            for lib, python in libs:
                reading, error = run_worker(python, lib, loss, args)
                if error:
                    notes.append(error)
                    continue
                assert reading is not None
                readings.setdefault((lib, loss), []).append(reading["updates_per_s"])
                versions[lib] = reading["version"]
    print(f"offline losses, one update = forward + backward + Adam + soft target update; batch "
          f"{args.batch}, obs 17, action 6, MLPs {args.hidden}x2, {args.threads} thread(s), "
          f"{args.rounds} round(s) of {args.seconds:g} s; "
          + ", ".join(f"{lib} {v}" for lib, v in versions.items()))
    for line in summarize(readings):
        print(line)
    for note in dict.fromkeys(notes):
        print("note:", note)
    return 0 if readings else 1


if __name__ == "__main__":
    sys.exit(main())
