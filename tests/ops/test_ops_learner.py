"""Learner, WeightSync, Evaluator, MetricsSink, sample_budget: behaviour and error paths."""

from __future__ import annotations

import csv
import threading

import pytest
import torch
from tensordict import TensorDict
from torch import nn

from streamrl.data import MinSize, SampleToInsertRatio
from streamrl.envs import SerialEnv
from streamrl.envs.libs.gym import GymEnv
from streamrl.objectives.common import LossModule
from streamrl.ops import Evaluator, Learner, MetricsSink, PolicyWeights, WeightSync, sample_budget


class MSE(LossModule):
    """A regression 'loss module': y = net(x)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 1)

    def forward(self, td):
        err = self.net(td["x"]) - td["y"]
        td.set("td_error", err.detach().abs().squeeze(-1))
        return TensorDict({"loss_mse": err.pow(2).mean(), "scale": torch.tensor(2.0),
                           "per_row": err.detach().squeeze(-1)})


def regression_batch(n, *, version=None, shape=None):
    x = torch.randn(n, 2)
    y = x @ torch.tensor([[1.5], [-2.0]]) + 0.5
    td = TensorDict({"x": x, "y": y}, [n])
    if version is not None:
        td.set(("collector", "policy_version"), torch.full((n,), version, dtype=torch.int64))
    return td.reshape(*shape) if shape else td


def make_learner(**kwargs):
    torch.manual_seed(0)
    loss = MSE()
    return Learner(loss, torch.optim.SGD(loss.parameters(), lr=0.1), **kwargs), loss


# ---------------------------------------------------------------------------------- Learner
def test_learner_minibatches_epochs_and_metrics():
    learner, _ = make_learner(minibatch_size=4, epochs=3)
    out = learner.step({"in": regression_batch(10, version=7)})["out"]
    # 10 rows in minibatches of 4: 3 updates per epoch (4, 4, 2), 3 epochs
    assert out["updates"] == 9 and out["batches"] == 1
    assert set(out) == {"updates", "batches", "loss_mse", "scale", "batch_policy_version",
                        "batch_policy_version_min"}
    assert out["scale"] == pytest.approx(2.0) and out["batch_policy_version"] == 7.0
    assert out["batch_policy_version_min"] == 7
    assert learner.state_dict() == {"updates": 9, "batches": 1}


class RecordRows(LossModule):
    """Records the ``i`` column of every minibatch it is called on."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, td):
        self.seen.append(td["i"].tolist())
        return TensorDict({"loss": (self.w - td["i"].float().mean()).pow(2)})


def record_learner(**kwargs):
    loss = RecordRows()
    return Learner(loss, torch.optim.SGD(loss.parameters(), lr=0.1), **kwargs), loss


def ids(n, shape=None):
    td = TensorDict({"i": torch.arange(n)}, [n])
    return td.reshape(*shape) if shape else td


@pytest.mark.parametrize(("n", "size", "sizes"), [(10, 4, [4, 4, 2]), (12, 4, [4, 4, 4]),
                                                  (5, 1, [1] * 5), (7, 7, [7]), (7, None, [7])])
def test_learner_shuffle_sees_every_row_once_per_epoch(n, size, sizes):
    torch.manual_seed(0)
    learner, loss = record_learner(minibatch_size=size, epochs=3, shuffle=True)
    out = learner.step({"in": ids(n)})["out"]
    assert out["updates"] == 3 * len(sizes)
    epochs = [loss.seen[k:k + len(sizes)] for k in range(0, len(loss.seen), len(sizes))]
    assert len(epochs) == 3
    for mbs in epochs:
        assert [len(mb) for mb in mbs] == sizes
        assert sorted(i for mb in mbs for i in mb) == list(range(n))
    orders = [[i for mb in mbs for i in mb] for mbs in epochs]
    if len(sizes) > 1:  # a fresh order every epoch
        assert orders[0] != list(range(n)) and len(set(map(tuple, orders))) > 1
    else:  # one minibatch per epoch: the rows in order, and nothing drawn from the generator
        assert orders == [list(range(n))] * 3
        state = torch.get_rng_state()
        learner.step({"in": ids(n)})
        assert torch.equal(torch.get_rng_state(), state)


def test_learner_shuffle_draws_one_permutation_per_epoch_from_the_global_generator():
    learner, loss = record_learner(minibatch_size=3, epochs=2, shuffle=True)
    torch.manual_seed(5)
    learner.step({"in": ids(8, shape=(2, 4))})  # [envs, time]: flattened first
    torch.manual_seed(5)
    expected = [idx.tolist() for _ in range(2) for idx in torch.randperm(8).split(3)]
    assert loss.seen == expected


def test_learner_without_shuffle_takes_consecutive_rows():
    learner, loss = record_learner(minibatch_size=4, epochs=2)
    state = torch.get_rng_state()
    learner.step({"in": ids(10)})
    assert loss.seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] * 2
    assert torch.equal(torch.get_rng_state(), state)
    assert "shuffle" not in repr(learner)
    assert "shuffle=True" in repr(record_learner(shuffle=True)[0])


@pytest.mark.parametrize("size", [None, 16, 4])
def test_learner_keeps_the_loss_writes_out_of_the_batch(size):
    learner, _ = make_learner(minibatch_size=size, epochs=2, shuffle=True)
    batch = regression_batch(16)
    learner.step({"in": batch})  # MSE sets "td_error" on the minibatches it is given
    assert "td_error" not in batch.keys()


def test_learner_learns_and_flattens_env_time_batches():
    learner, loss = make_learner(minibatch_size=32, epochs=4)
    first = learner.step({"in": regression_batch(64, shape=(4, 16))})["out"]["loss_mse"]
    for _ in range(20):
        last = learner.step({"in": regression_batch(64, shape=(4, 16))})["out"]["loss_mse"]
    assert last < 0.01 * first
    assert torch.allclose(loss.net.weight, torch.tensor([[1.5, -2.0]]), atol=0.05)


def test_learner_target_updater_grad_clipping_and_lock():
    steps = []

    class Updater:
        def step(self):
            steps.append(1)

    learner, loss = make_learner(minibatch_size=8, target_updater=Updater(), max_grad_norm=1e-3)
    seen_locked = []
    original = learner.optimizer.step

    def step(*a, **k):
        seen_locked.append(learner.lock.locked())
        total = torch.cat([p.grad.flatten() for p in loss.parameters()]).norm()
        assert total <= 1e-3 * 1.001  # clipped before the step
        return original(*a, **k)

    learner.optimizer.step = step
    out = learner.step({"in": regression_batch(16) * 100})["out"]
    assert len(steps) == 2 and seen_locked == [True, True]
    assert out["grad_norm"] > 1e-3  # the norm before clipping is reported


def test_learner_steps_under_a_lock_it_is_given():
    """Two learners training parts of one published policy share a lock: a copy made under
    it sees neither's step half-done."""
    shared = threading.Lock()
    first, _ = make_learner(minibatch_size=8, lock=shared)
    second, _ = make_learner(minibatch_size=8, lock=shared)
    assert first.lock is shared and second.lock is shared
    seen = []
    original = second.optimizer.step

    def step(*a, **k):
        seen.append(shared.locked())
        return original(*a, **k)

    second.optimizer.step = step
    second.step({"in": regression_batch(8)})
    assert seen == [True]
    with pytest.raises(TypeError, match=r"lock must be a threading.Lock \(or None\), found int"):
        make_learner(lock=3)


def test_learner_writes_priorities_back():
    calls = []

    class Buffer:
        def update_priority(self, index, priority):
            calls.append((index.clone(), priority.clone()))

    learner, _ = make_learner(minibatch_size=3, priority_buffer=Buffer())
    batch = regression_batch(6)
    batch.set("index", torch.arange(10, 16))
    learner.step({"in": batch})
    assert [c[0].tolist() for c in calls] == [[10, 11, 12], [13, 14, 15]]
    assert all(c[1].shape == (3,) and (c[1] >= 0).all() for c in calls)
    with pytest.raises(KeyError, match="index"):
        learner.step({"in": regression_batch(6)})


def test_learner_loss_keys_and_errors():
    learner, _ = make_learner(loss_keys=["loss_mse"])
    assert learner.step({"in": regression_batch(4)})["out"]["updates"] == 1
    with pytest.raises(TypeError, match="TensorDict"):
        learner.step({"in": [1, 2]})
    with pytest.raises(ValueError, match="empty batch"):
        learner.step({"in": regression_batch(4)[:0]})
    bad, _ = make_learner(loss_keys=["loss_nope"])
    with pytest.raises(KeyError, match="loss_nope"):
        bad.step({"in": regression_batch(4)})

    class NoLoss(MSE):
        def forward(self, td):
            return TensorDict({"value": self.net(td["x"]).mean()})

    nl = NoLoss()
    with pytest.raises(ValueError, match="no 'loss\\*' entries"):
        Learner(nl, torch.optim.SGD(nl.parameters(), lr=0.1)).step({"in": regression_batch(4)})
    loss = MSE()
    opt = torch.optim.SGD(loss.parameters(), lr=0.1)
    for kwargs, err, match in [
        (dict(minibatch_size=0), ValueError, "minibatch_size"),
        (dict(epochs=0), ValueError, "epochs"),
        (dict(epochs=2.0), ValueError, "epochs must be a positive int"),
        (dict(minibatch_size=True), ValueError, "minibatch_size"),
        (dict(shuffle="yes"), TypeError, "shuffle must be a bool, got str"),
        (dict(shuffle=1), TypeError, "shuffle must be a bool, got int"),
        (dict(target_updater=object()), TypeError, "step"),
        (dict(max_grad_norm=0.0), ValueError, "max_grad_norm"),
        (dict(loss_keys=[]), ValueError, "loss_keys"),
        (dict(priority_buffer=object()), TypeError, "update_priority"),
    ]:
        with pytest.raises(err, match=match):
            Learner(loss, opt, **kwargs)
    with pytest.raises(TypeError, match="Optimizer"):
        Learner(loss, object())
    with pytest.raises(TypeError, match=r"nn\.Module"):
        Learner(lambda td: td, opt)


# ---------------------------------------------------------------------------------- WeightSync
class TwoNets(LossModule):
    """An 'actor' and a 'critic' regressed separately; counts the target updates."""

    def __init__(self):
        super().__init__()
        self.actor, self.critic = nn.Linear(2, 1), nn.Linear(2, 1)

    def forward(self, td):
        return TensorDict({"loss_actor": (self.actor(td["x"]) - td["y"]).pow(2).mean(),
                           "loss_critic": (self.critic(td["x"]) - td["y"]).pow(2).mean()})


class CountSteps:
    def __init__(self):
        self.calls = 0

    def step(self):
        self.calls += 1


def delayed_learner(delay=2, **kwargs):
    torch.manual_seed(0)
    loss = TwoNets()
    target = CountSteps()
    learner = Learner(loss, torch.optim.SGD(loss.critic.parameters(), lr=0.1),
                      loss_keys=["loss_critic"], minibatch_size=1, target_updater=target,
                      actor_optimizer=torch.optim.SGD(loss.actor.parameters(), lr=0.1),
                      actor_loss_keys=["loss_actor"], policy_delay=delay, **kwargs)
    return learner, loss, target


def test_learner_delayed_actor_steps_every_policy_delay_updates():
    learner, loss, target = delayed_learner(delay=3, max_grad_norm=100.0)
    actor0 = loss.actor.weight.detach().clone()
    critic0 = loss.critic.weight.detach().clone()
    out = learner.step({"in": regression_batch(2)})["out"]  # updates 1 and 2: critic only
    assert torch.equal(loss.actor.weight, actor0) and not torch.equal(loss.critic.weight, critic0)
    assert target.calls == 0 and "actor_grad_norm" not in out and "grad_norm" in out
    out = learner.step({"in": regression_batch(4)})["out"]  # updates 3 to 6: the 3rd and 6th
    assert not torch.equal(loss.actor.weight, actor0)
    assert target.calls == 2 and learner.updates == 6 and out["actor_grad_norm"] >= 0
    assert "policy_delay=3" in repr(learner)


class TwoNetsWithValueLoss(TwoNets):
    """TwoNets with TorchRL's value_loss(td) -> (loss, metadata); counts whole calls."""

    def __init__(self):
        super().__init__()
        self.whole_calls = 0

    def forward(self, td):
        self.whole_calls += 1
        return super().forward(td)

    def value_loss(self, td):
        return (self.critic(td["x"]) - td["y"]).pow(2).mean(), {}


def test_learner_skip_actor_loss_calls_value_loss_between_actor_updates():
    torch.manual_seed(0)
    loss = TwoNetsWithValueLoss()
    learner = Learner(loss, torch.optim.SGD(loss.critic.parameters(), lr=0.1),
                      loss_keys=["loss_critic"], minibatch_size=1,
                      actor_optimizer=torch.optim.SGD(loss.actor.parameters(), lr=0.1),
                      actor_loss_keys=["loss_actor"], policy_delay=2, skip_actor_loss=True)
    out = learner.step({"in": regression_batch(6)})["out"]
    assert loss.whole_calls == 3 and learner.updates == 6  # the 2nd, 4th and 6th
    # loss_actor: its mean over the 3 updates that computed it, not diluted over all 6
    assert out["loss_actor"] > 0 and set(out) >= {"loss_actor", "loss_critic"}
    with pytest.raises(ValueError, match="skip_actor_loss needs one loss_keys term"):
        Learner(TwoNets(), torch.optim.SGD(loss.critic.parameters(), lr=0.1),
                loss_keys=["loss_critic"], actor_optimizer=torch.optim.SGD(
                    loss.actor.parameters(), lr=0.1), actor_loss_keys=["loss_actor"],
                skip_actor_loss=True)


def test_learner_delay_of_one_matches_one_optimizer():
    learner, loss, target = delayed_learner(delay=1)
    torch.manual_seed(0)  # the initial weights of delayed_learner's
    ref = TwoNets()
    both = Learner(ref, torch.optim.SGD(ref.parameters(), lr=0.1), minibatch_size=1)
    batch = regression_batch(3)
    learner.step({"in": batch})
    both.step({"in": batch})
    assert target.calls == 3
    for a, b in zip(loss.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(a, b)


def test_learner_delayed_actor_errors():
    loss = TwoNets()
    critic = torch.optim.SGD(loss.critic.parameters(), lr=0.1)
    actor = torch.optim.SGD(loss.actor.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="need an actor_optimizer"):
        Learner(loss, critic, policy_delay=2)
    with pytest.raises(ValueError, match="need an actor_optimizer"):
        Learner(loss, critic, skip_actor_loss=True)
    with pytest.raises(ValueError, match="name the terms of each"):
        Learner(loss, critic, actor_optimizer=actor, actor_loss_keys=["loss_actor"])
    with pytest.raises(ValueError, match="must be disjoint"):
        Learner(loss, critic, loss_keys=["loss_actor"], actor_optimizer=actor,
                actor_loss_keys=["loss_actor"])
    with pytest.raises(ValueError, match="share 2 parameters"):
        Learner(loss, torch.optim.SGD(loss.parameters(), lr=0.1), loss_keys=["loss_critic"],
                actor_optimizer=actor, actor_loss_keys=["loss_actor"])
    with pytest.raises(ValueError, match="policy_delay must be a positive int"):
        Learner(loss, critic, loss_keys=["loss_critic"], actor_optimizer=actor,
                actor_loss_keys=["loss_actor"], policy_delay=0)
    with pytest.raises(TypeError, match="actor_optimizer must be a torch"):
        Learner(loss, critic, loss_keys=["loss_critic"], actor_optimizer=object(),
                actor_loss_keys=["loss_actor"])


def test_learner_trains_the_warmup_terms_for_the_first_updates_then_its_own():
    """For 3 updates only the critic (the warm-up term) moves; from the 4th only the actor
    (loss_keys); the count goes on across batches and through state_dict."""
    torch.manual_seed(0)
    loss = TwoNets()
    learner = Learner(loss, torch.optim.SGD(loss.parameters(), lr=0.1), minibatch_size=1,
                      loss_keys=["loss_actor"], warmup_updates=3,
                      warmup_loss_keys=["loss_critic"])
    actor0, critic0 = loss.actor.weight.detach().clone(), loss.critic.weight.detach().clone()
    learner.step({"in": regression_batch(2)})
    assert torch.equal(loss.actor.weight, actor0) and not torch.equal(loss.critic.weight, critic0)
    state = learner.state_dict()
    critic1 = loss.critic.weight.detach().clone()
    learner.step({"in": regression_batch(1)})  # the 3rd update: still the warm-up term
    assert torch.equal(loss.actor.weight, actor0)
    critic2 = loss.critic.weight.detach().clone()
    assert not torch.equal(critic2, critic1)
    learner.step({"in": regression_batch(2)})  # the 4th and 5th: the actor's term only
    assert not torch.equal(loss.actor.weight, actor0) and torch.equal(loss.critic.weight, critic2)
    assert learner.updates == 5 and "warmup_updates=3" in repr(learner)

    resumed = Learner(TwoNets(), torch.optim.SGD(loss.parameters(), lr=0.1),
                      loss_keys=["loss_actor"], warmup_updates=3,
                      warmup_loss_keys=["loss_critic"])
    resumed.load_state_dict(state)
    assert resumed.updates == 2  # one warm-up update left after the resume


def test_learner_warmup_errors():
    loss = TwoNets()
    sgd = torch.optim.SGD(loss.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="warmup_updates must be a non-negative int"):
        Learner(loss, sgd, warmup_updates=-1, warmup_loss_keys=["loss_critic"])
    with pytest.raises(ValueError, match="warmup_updates must be a non-negative int"):
        Learner(loss, sgd, warmup_updates=True, warmup_loss_keys=["loss_critic"])
    with pytest.raises(ValueError, match="go together"):
        Learner(loss, sgd, warmup_updates=5)
    with pytest.raises(ValueError, match="go together"):
        Learner(loss, sgd, warmup_loss_keys=["loss_critic"])
    with pytest.raises(ValueError, match="not supported with an actor_optimizer"):
        Learner(loss, torch.optim.SGD(loss.critic.parameters(), lr=0.1),
                loss_keys=["loss_critic"], warmup_updates=2, warmup_loss_keys=["loss_critic"],
                actor_optimizer=torch.optim.SGD(loss.actor.parameters(), lr=0.1),
                actor_loss_keys=["loss_actor"])
    learner = Learner(loss, sgd, warmup_updates=1, warmup_loss_keys=["loss_missing"])
    with pytest.raises(KeyError, match="loss_missing"):
        learner.step({"in": regression_batch(2)})


def test_weight_sync_reports_the_oldest_rows_lag():
    net = nn.Linear(2, 1)
    weights = PolicyWeights(net, version=5)
    sync = WeightSync(weights, net)
    out = sync.step({"in": {"updates": 1, "batch_policy_version": 3.5,
                            "batch_policy_version_min": 2}})["out"]
    assert out["staleness"] == 1.5 and out["staleness_max"] == 3 and out["policy_version"] == 6
    with pytest.raises(ValueError, match="version must be an int >= 0"):
        PolicyWeights(net, version=-1)


def test_weight_sync_publishes_every_k_updates_with_staleness():
    net = nn.Linear(2, 1)
    weights = PolicyWeights(net)
    hooks = []
    sync = WeightSync(weights, net, every=10, before_publish=lambda: hooks.append(1))
    with torch.no_grad():
        net.weight.fill_(3.0)
    out = sync.step({"in": {"updates": 4, "batch_policy_version": 0.0}})["out"]
    assert weights.version == 0 and out["policy_version"] == 0 and out["staleness"] == 0.0
    out = sync.step({"in": {"updates": 12, "batch_policy_version": 0.0, "loss": 1.0}})["out"]
    assert weights.version == 1 and out == {"updates": 12, "batch_policy_version": 0.0,
                                            "loss": 1.0, "staleness": 0.0, "policy_version": 1}
    assert bool((weights.policy.weight == 3.0).all()) and hooks == [1]
    # staleness: the learner's version when it trained minus the batch's version
    out = sync.step({"in": {"updates": 15, "batch_policy_version": 0.5}})["out"]
    assert out["staleness"] == 0.5 and weights.version == 1
    with torch.no_grad():
        net.weight.fill_(-1.0)
    sync.finish()  # 3 pending updates: published at the end of the stream
    assert weights.version == 2 and bool((weights.policy.weight == -1.0).all())
    sync.finish()
    assert weights.version == 2  # nothing pending


def test_weight_sync_publish_at_end_publishes_what_other_learners_changed():
    net = nn.Linear(2, 1)
    weights = PolicyWeights(net)
    plain = WeightSync(weights, net)
    plain.step({"in": {"updates": 1}})
    assert weights.version == 1
    with torch.no_grad():  # another learner trains the module after this one's last message
        net.weight.fill_(5.0)
    plain.finish()
    assert weights.version == 1  # nothing of its own pending: not published
    sync = WeightSync(weights, net, publish_at_end=True, snapshot_at=lambda n: True)
    out = sync.step({"in": {"updates": 1}})
    assert weights.version == 2 and out["snapshot"]["updates"] == 1
    with torch.no_grad():
        net.weight.fill_(7.0)
    final = sync.finish()
    assert weights.version == 3 and bool((weights.policy.weight == 7.0).all())
    # the final snapshot (the final evaluation's weights) is of those weights
    assert bool((final["snapshot"]["weights"]["weight"] == 7.0).all())


def test_weight_sync_holds_the_lock_while_copying():
    net = nn.Linear(2, 1)
    weights = PolicyWeights(net)
    lock = threading.Lock()
    sync = WeightSync(weights, net, lock=lock)
    lock.acquire()
    t = threading.Thread(target=sync.step, args=({"in": {"updates": 1}},))
    t.start()
    t.join(0.2)
    assert t.is_alive() and weights.version == 0  # waits for the learner's step
    lock.release()
    t.join(5)
    assert weights.version == 1


def test_weight_sync_errors():
    net = nn.Linear(2, 1)
    weights = PolicyWeights(net)
    with pytest.raises(TypeError, match="PolicyWeights"):
        WeightSync(net, net)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        WeightSync(weights, lambda: 0)
    with pytest.raises(ValueError, match="every"):
        WeightSync(weights, net, every=0)
    with pytest.raises(TypeError, match="lock"):
        WeightSync(weights, net, lock=object())
    with pytest.raises(TypeError, match="before_publish"):
        WeightSync(weights, net, before_publish=3)
    with pytest.raises(TypeError, match="'updates'"):
        WeightSync(weights, net).step({"in": {"loss": 1.0}})


# ---------------------------------------------------------------------------------- Evaluator
def constant_policy(td):
    td.set("action", torch.zeros(td.batch_size, dtype=torch.int64))
    return td


def eval_env():
    return SerialEnv(3, lambda: GymEnv("CartPole-v1", categorical_action_encoding=True))


def test_evaluator_runs_on_interval_crossings_and_at_the_end():
    ev = Evaluator(eval_env, constant_policy, interval=10, seed=0)
    with ev:
        ev.open()
        assert ev.step({"in": {"updates": 5}}) is None
        first = ev.step({"in": {"updates": 12}})["out"]
        assert first["updates"] == 12 and first["eval_episodes"] == 3
        # always pushing left ends CartPole within a few dozen steps
        assert 5 <= first["eval_return"] <= 30 and first["eval_s"] > 0
        assert ev.step({"in": {"updates": 19}}) is None
        again = ev.step({"in": {"updates": 31}})["out"]  # crossed 20 (and 30): one evaluation
        assert again["eval_return"] == first["eval_return"]  # same seed, same policy
        assert ev.finish() is None  # the last count was just evaluated
        ev.step({"in": {"updates": 33}})
        final = ev.finish()["out"]
        assert final["updates"] == 33 and ev.evaluations == 3
    assert ev.env is None
    ev.close()  # idempotent


def test_evaluator_with_policy_weights_reports_the_version():
    net = nn.Linear(4, 2)
    from streamrl.modules import QValueActor

    actor = QValueActor(net, spec=GymEnv("CartPole-v1", categorical_action_encoding=True).action_spec)
    weights = PolicyWeights(actor)
    weights.publish(actor)
    ev = Evaluator(eval_env, weights, interval=1)
    ev.open()
    try:
        out = ev.step({"in": {"updates": 1}})["out"]
        assert out["policy_version"] == 1 and 8 <= out["eval_return"] <= 500
    finally:
        ev.close()


def test_evaluator_errors():
    with pytest.raises(ValueError, match="interval"):
        Evaluator(eval_env, constant_policy, interval=0)
    with pytest.raises(TypeError, match="policy"):
        Evaluator(eval_env, 3, interval=1)
    ev = Evaluator(eval_env, constant_policy, interval=1)
    with pytest.raises(RuntimeError, match="before open"):
        ev.evaluate()
    with pytest.raises(TypeError, match="'updates'"):
        ev.step({"in": {"frames": 1}})
    assert ev.finish() is None  # never opened: nothing to evaluate


# ---------------------------------------------------------------------------------- MetricsSink
def collector_batch(rewards, dones):
    r = torch.tensor(rewards, dtype=torch.float32)
    d = torch.tensor(dones, dtype=torch.bool)
    return TensorDict({"next": {"reward": r.unsqueeze(-1), "done": d.unsqueeze(-1)}},
                      list(r.shape))


def test_metrics_sink_counts_frames_episodes_and_writes_rows(tmp_path):
    sink = MetricsSink(tmp_path, columns=["frames", "train_return", "train_episodes",
                                          "updates", "loss", "eval_return"], log_every=2)
    sink.open()
    # 2 envs x 3 steps: env 0 finishes an episode of return 3 at t=1, env 1 one of 6 at t=2
    first_batch = collector_batch([[1, 2, 5], [1, 2, 3]], [[0, 1, 0], [0, 0, 1]])
    first_batch.set(("collector", "policy_version"), torch.tensor([[3, 3, 4], [3, 3, 4]]))
    sink.step({"collector": first_batch})
    assert sink.frames == 6
    sink.step({"learner": {"updates": 1, "loss": 0.5, "not_a_column": 1}})
    assert sink.rows == []  # log_every=2
    sink.step({"learner": {"updates": 2, "loss": 0.25}})
    # env 0 carries 5 into its next episode
    sink.step({"collector": collector_batch([[1, 0, 0], [4, 0, 0]], [[1, 0, 0], [1, 0, 0]])})
    sink.step({"eval": {"eval_return": 42.0, "updates": 2}})
    sink.close()
    sink.close()
    assert sink.frames == 12 and sink.evaluations == [(12, 42.0)]
    first, second = sink.rows
    assert first["train_return"] == 4.5 and first["train_episodes"] == 2
    assert first["frames"] == 6 and first["updates"] == 2 and first["fps"] > 0
    assert first["collector_version"] == 4 == second["collector_version"]
    assert second["train_return"] == 5.0 and second["train_episodes"] == 2
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["frames"] for r in rows] == ["6", "12"]
    assert rows[1]["eval_return"] == "42.0" and "not_a_column" not in rows[0]


def test_metrics_sink_reports_the_return_per_task():
    sink = MetricsSink(columns=None)
    # 3 envs x 2 steps, tasks 0, 2, 0: returns 3 (task 0) and 7 (task 2) end at t=1, then
    # 4 (task 0) at t=0 of the next batch
    batch = collector_batch([[1, 2], [3, 4], [5, 0]], [[0, 1], [0, 1], [0, 0]])
    batch.set(("task", "id"), torch.tensor([[[0], [0]], [[2], [2]], [[0], [0]]]))
    sink.step({"collector": batch})
    sink.step({"learner": {"updates": 1}})
    more = collector_batch([[9], [9], [-1]], [[0], [0], [1]])
    more.set(("task", "id"), torch.tensor([[[0]], [[2]], [[0]]]))
    sink.step({"collector": more})
    sink.step({"learner": {"updates": 2}})
    first, second = sink.rows
    assert first["train_return"] == 5.0 and first["train_episodes"] == 2
    assert first["train_return/task_0"] == 3.0 and first["train_return/task_2"] == 7.0
    assert second["train_return/task_0"] == 4.0 and "train_return/task_2" not in second
    plain = MetricsSink(columns=None)
    plain.step({"collector": collector_batch([[1, 2]], [[0, 1]])})
    plain.step({"learner": {"updates": 1}})
    assert not any(k.startswith("train_return/") for k in plain.rows[0])


def test_metrics_sink_reports_the_mean_per_agent_return_of_each_group():
    # 2 envs x 2 steps of a multi-agent env: no root reward, a root done, and a RewardSum's
    # per-agent returns per group ([2, 2, n_agents, 1]); env 1 ends at t=0, env 0 at t=1
    done = torch.tensor([[[False], [True]], [[True], [False]]])
    chasers = torch.tensor([[[1.0, 3.0], [2.0, 4.0]], [[5.0, 7.0], [0.0, 0.0]]])[..., None]
    evader = -torch.tensor([[[1.0], [2.0]], [[6.0], [0.0]]])[..., None]
    batch = TensorDict({"next": {"done": done, "chasers": {"episode_reward": chasers},
                                 "evader": {"episode_reward": evader}}}, [2, 2])
    sink = MetricsSink(columns=None, return_key={"chasers": ("next", "chasers", "episode_reward"),
                                                 "evader": ("next", "evader", "episode_reward")})
    sink.step({"collector": batch})
    sink.step({"learner": {"updates": 1}})
    sink.step({"learner": {"updates": 2}})
    first, second = sink.rows
    # env 0's chasers end with 2 and 4 (mean 3), env 1's with 5 and 7 (mean 6)
    assert first["train_return/chasers"] == 4.5 and first["train_return/evader"] == -4.0
    assert first["train_return"] == 4.5 and first["train_episodes"] == 2
    assert "train_return" not in second and "train_return/evader" not in second
    with pytest.raises(ValueError, match="names"):
        MetricsSink(return_key={"": ("next", "x")})
    with pytest.raises(KeyError, match="'evader'"):
        MetricsSink(return_key={"evader": ("next", "nobody", "episode_reward")}).step(
            {"collector": batch})


def test_metrics_sink_errors_and_port_subsets():
    with pytest.raises(ValueError, match="inputs"):
        MetricsSink(inputs=("collector", "bogus"))
    with pytest.raises(ValueError, match="log_every"):
        MetricsSink(log_every=0)
    with pytest.raises(ValueError, match="total_frames"):
        MetricsSink(total_frames=0)
    sink = MetricsSink(inputs=("learner",))
    assert sink.inputs == ("learner",)
    with pytest.raises(TypeError, match="dicts"):
        sink.step({"learner": [1]})
    with pytest.raises(TypeError, match="TensorDict"):
        sink.step({"collector": {"frames": 1}})
    with pytest.raises(KeyError, match="eval_return"):
        sink.step({"eval": {"updates": 1}})


def test_metrics_sink_progress_bar_counts_frames():
    sink = MetricsSink(total_frames=12, progress=True, desc="test")
    sink.open()
    try:
        sink.step({"collector": collector_batch([[0.0, 1.0]], [[0, 0]])})
        assert sink._bar.n == 2 and sink._bar.total == 12
    finally:
        sink.close()
    assert sink._bar is None


# ---------------------------------------------------------------------------------- sample_budget
def test_sample_budget_matches_what_the_limiter_grants():
    def limiter():
        return SampleToInsertRatio(4.0, min_size_to_sample=20, error_buffer=(60, 140),
                                   max_sample_batch=16, max_insert_batch=10)

    budget = sample_budget(limiter(), 205, 16)
    assert budget == (205 * 4 - 60) // 16
    # drive a real limiter: insert in chunks, sample whenever allowed; count what it grants
    lim, inserted, granted = limiter(), 0, 0
    while inserted < 205:
        n = min(10, 205 - inserted)
        if lim.try_insert(n):
            inserted += n
        while lim.try_sample(16):
            granted += 1
    while lim.try_sample(16):
        granted += 1
    assert granted == budget
    assert sample_budget(limiter(), 19, 16) == 0  # before min_size_to_sample
    # counts from the current state
    lim = limiter()
    lim.try_insert(10)
    lim.try_insert(10)
    lim.try_sample(16)
    assert sample_budget(lim, 205, 16) == budget - 1


def test_sample_budget_errors():
    with pytest.raises(ValueError, match="does not bound sampling"):
        sample_budget(MinSize(5), 10, 2)
    with pytest.raises(ValueError, match="batch_size"):
        sample_budget(MinSize(5), 10, 0)
    with pytest.raises(ValueError, match="inserts"):
        sample_budget(MinSize(5), -1, 2)
    with pytest.raises(TypeError, match="can_sample"):
        sample_budget(object(), 10, 2)
