"""MultiStep: n-step transitions of collector batches, checked against a per-step reference."""

import pytest
import torch
from tensordict import TensorDict

from streamrl.data import MultiStep
from streamrl.data.postprocs import MultiStep as MultiStepFromModule


def _batch(envs, T, p_done=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    done = torch.rand(envs, T, 1, generator=g) < p_done
    terminated = done & (torch.rand(envs, T, 1, generator=g) < 0.5)
    obs = torch.arange(envs * T, dtype=torch.float32).reshape(envs, T, 1)
    return TensorDict(
        {
            "observation": obs,
            "next": {
                "observation": obs + 0.5,
                "reward": torch.randn(envs, T, 1, generator=g),
                "done": done,
                "terminated": terminated,
                "truncated": done & ~terminated,
            },
        },
        [envs, T],
    )


def _reference(batch, gamma, n):
    """Per-step loops: sum up to n rewards, stop after a done step or at the batch end."""
    envs, T = batch.batch_size
    out = {"reward": torch.zeros(envs, T), "k": torch.zeros(envs, T, dtype=torch.long),
           "next_obs": torch.zeros(envs, T), "nonterminal": torch.zeros(envs, T, dtype=torch.bool)}
    r = batch["next", "reward"][..., 0]
    d = batch["next", "done"][..., 0]
    term = batch["next", "terminated"][..., 0]
    for e in range(envs):
        for t in range(T):
            acc, k = 0.0, 0
            while k < n and t + k < T:
                acc += gamma**k * float(r[e, t + k])
                k += 1
                if d[e, t + k - 1]:
                    break
            out["reward"][e, t] = acc
            out["k"][e, t] = k
            out["next_obs"][e, t] = batch["next", "observation"][e, t + k - 1, 0]
            out["nonterminal"][e, t] = not bool(term[e, t + k - 1])
    return out


@pytest.mark.parametrize("n", [1, 3, 7])
def test_matches_the_per_step_reference(n):
    batch = _batch(3, 25, seed=n)
    before = batch.clone()
    out = MultiStep(gamma=0.9, n_steps=n)(batch)
    ref = _reference(batch, 0.9, n)
    assert torch.allclose(out["next", "reward"][..., 0], ref["reward"], atol=1e-5)
    assert torch.equal(out["steps_to_next_obs"], ref["k"])
    assert torch.equal(out["next", "observation"][..., 0], ref["next_obs"])
    assert torch.equal(out["nonterminal"], ref["nonterminal"])
    assert torch.allclose(out["gamma"], 0.9 ** ref["k"].float())
    assert out["gamma"].dtype == torch.float32
    assert torch.equal(out["next", "original_reward"], batch["next", "reward"])
    assert (batch == before).all()  # the input is left as it was
    assert torch.equal(out["observation"], batch["observation"])


def test_flat_batch_and_done_moves_with_the_observation():
    batch = _batch(1, 8, p_done=0.0)[0]
    batch["next", "done"][4] = True
    batch["next", "terminated"][4] = True
    out = MultiStep(gamma=0.5, n_steps=3)(batch)
    assert out["steps_to_next_obs"].tolist() == [3, 3, 3, 2, 1, 3, 2, 1]
    assert out["next", "done"][..., 0].tolist() == [False, False, True, True, True,
                                                   False, False, False]
    assert out["nonterminal"].tolist() == [True, True, False, False, False, True, True, True]
    assert out["next", "truncated"].shape == (8, 1)


def test_n_steps_zero_is_identity_and_module_path():
    batch = _batch(2, 5)
    assert MultiStep(gamma=0.99, n_steps=0)(batch) is batch
    assert MultiStepFromModule is MultiStep
    assert repr(MultiStep(0.9, 2)) == "MultiStep(gamma=0.9, n_steps=2)"


@pytest.mark.parametrize("kwargs, err, match", [
    ({"gamma": 1.5, "n_steps": 2}, ValueError, "gamma"),
    ({"gamma": "x", "n_steps": 2}, ValueError, "gamma"),
    ({"gamma": 0.9, "n_steps": -1}, ValueError, "n_steps"),
    ({"gamma": 0.9, "n_steps": 2.0}, ValueError, "n_steps"),
])
def test_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        MultiStep(**kwargs)


def test_bad_batches():
    ms = MultiStep(0.9, 2)
    with pytest.raises(TypeError, match="TensorDict"):
        ms(torch.zeros(3))
    with pytest.raises(KeyError, match="reward"):
        ms(TensorDict({"next": {"done": torch.zeros(3, 1, dtype=torch.bool)}}, [3]))
    with pytest.raises(KeyError, match="done"):
        ms(TensorDict({"next": {"reward": torch.zeros(3, 1)}}, [3]))
    with pytest.raises(ValueError, match="time dim"):
        ms(TensorDict({"next": {"reward": torch.zeros(1)}}, []))
    with pytest.raises(ValueError, match="shape"):
        ms(TensorDict({"next": {"reward": torch.zeros(3, 1),
                                "done": torch.zeros(3, 2, dtype=torch.bool)}}, [3]))


def test_as_a_collector_postproc():
    from streamrl.collectors import SyncDataCollector
    from streamrl.envs import StepCounter, TransformedEnv
    from streamrl.envs.libs.gym import GymEnv

    torch.manual_seed(0)
    env = TransformedEnv(GymEnv("CartPole-v1"), StepCounter())
    env.set_seed(0)
    collector = SyncDataCollector(env, None, frames_per_batch=10, total_frames=10,
                                  postproc=MultiStep(gamma=0.99, n_steps=4))
    try:
        batch = next(iter(collector))
    finally:
        collector.shutdown()
    steps = batch["step_count"].reshape(-1)
    nxt = batch["next", "step_count"].reshape(-1)
    k = batch["steps_to_next_obs"].reshape(-1)
    assert not batch["next", "done"].any()  # seeded: no episode ends in these 10 steps
    # the next observation is k steps ahead: 4, and fewer at the end of the batch
    assert k.tolist() == [4] * 7 + [3, 2, 1]
    assert torch.equal(nxt - steps, k)
