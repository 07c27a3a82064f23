"""Primers made by modules: recurrent states and consistent-dropout masks registered in the
env's specs, and the helpers that gather them from a whole policy."""

from __future__ import annotations

import warnings

import pytest
import torch
from tensordict.nn import TensorDictModule as Mod
from tensordict.nn import TensorDictSequential as Seq

from streamrl.envs import (
    Compose,
    GymEnv,
    InitTracker,
    ParallelEnv,
    SerialEnv,
    TensorDictPrimer,
    TransformedEnv,
    step_mdp,
)
from streamrl.modules import (
    MLP,
    ConsistentDropoutModule,
    GRUModule,
    LSTMModule,
    get_primers_from_module,
)
from streamrl.modules.utils import get_env_transforms_from_module, inv_softplus, mappings


def _lstm(hidden=8, layers=1):
    return LSTMModule(input_size=3, hidden_size=hidden, num_layers=layers,
                      in_keys=["observation", "rs_h", "rs_c"],
                      out_keys=["features", ("next", "rs_h"), ("next", "rs_c")])


def _policy(lstm):
    return Seq(lstm, Mod(MLP(num_cells=[8], out_features=1), in_keys=["features"],
                         out_keys=["action"]))


def test_lstm_primer_names_the_state_keys_with_their_shape_and_dtype():
    primer = _lstm(hidden=6, layers=2).make_tensordict_primer()
    assert isinstance(primer, TensorDictPrimer)
    assert set(primer.primers.keys()) == {"rs_h", "rs_c"}
    for key in ("rs_h", "rs_c"):
        assert primer.primers[key].shape == (2, 6)
        assert primer.primers[key].dtype == torch.float32


def test_gru_primer_follows_the_module_dtype():
    gru = GRUModule(input_size=3, hidden_size=4, in_key="obs", out_key="f").double()
    primer = gru.make_tensordict_primer()
    assert list(primer.primers.keys()) == ["recurrent_state"]
    assert primer.primers["recurrent_state"].dtype == torch.float64


def test_primed_env_carries_the_state_and_zeroes_it_at_reset():
    lstm = _lstm()
    env = TransformedEnv(GymEnv("Pendulum-v1"), InitTracker()).append_transform(
        lstm.make_tensordict_primer())
    assert "rs_h" in env.observation_spec.keys() and "rs_c" in env.state_spec.keys()
    with torch.no_grad():
        r = env.rollout(6, _policy(lstm))
    assert torch.equal(r["rs_h"][0], torch.zeros(1, 8))
    assert torch.equal(r["next", "rs_h"][:-1], r["rs_h"][1:])
    assert r["rs_h"][1:].abs().sum() > 0
    fresh = env.reset()
    assert torch.equal(fresh["rs_c"], torch.zeros(1, 8))
    env.close()


def test_primer_on_a_parallel_env_batches_the_states():
    lstm = _lstm()
    env = ParallelEnv(2, lambda: TransformedEnv(GymEnv("Pendulum-v1"), InitTracker()))
    env = TransformedEnv(env, get_primers_from_module(_policy(lstm)))
    try:
        with torch.no_grad():
            r = env.rollout(4, _policy(lstm))
        assert r["rs_c"].shape == (2, 4, 1, 8)
        assert torch.equal(r["next", "rs_c"][:, :-1], r["rs_c"][:, 1:])
    finally:
        env.close()


@pytest.mark.parametrize("batched", [SerialEnv, ParallelEnv])
def test_primer_inside_each_sub_env_carries_the_policy_state(batched):
    lstm = _lstm()
    env = batched(2, lambda: TransformedEnv(GymEnv("Pendulum-v1"), InitTracker())
                  .append_transform(lstm.make_tensordict_primer()))
    try:
        with torch.no_grad():
            r = env.rollout(4, _policy(lstm))
        assert torch.equal(r["rs_h"][:, 0], torch.zeros(2, 1, 8))
        assert torch.equal(r["next", "rs_h"][:, :-1], r["rs_h"][:, 1:])
        assert r["rs_h"][:, 1:].abs().sum() > 0
        # a step keeps the next state the policy computed (the primer does not overwrite it)
        td = env.reset()
        policy = _policy(lstm)
        with torch.no_grad():
            for _ in range(3):
                td = policy(td)
                expected = td["next", "rs_h"].clone()
                td = env.step(td)
                assert torch.equal(td["next", "rs_h"], expected)
                td = step_mdp(td)
    finally:
        env.close()


def test_dropout_primer_needs_input_shape():
    m = ConsistentDropoutModule(0.5, in_keys=["x", "mask"])
    with pytest.raises(ValueError, match="input_shape"):
        m.make_tensordict_primer()


def test_dropout_mask_is_fixed_within_an_episode_and_redrawn_at_reset():
    drop = ConsistentDropoutModule(0.5, in_keys=["features", "mask"], input_shape=(64,))
    policy = Seq(Mod(torch.nn.Linear(3, 64), in_keys=["observation"], out_keys=["features"]),
                 drop, Mod(torch.nn.Linear(64, 1), in_keys=["features"], out_keys=["action"]))
    env = GymEnv("Pendulum-v1").append_transform(get_primers_from_module(policy))
    with torch.no_grad():
        r = env.rollout(5, policy)
    masks = r["mask"]
    assert ((masks == 0) | (masks == 2)).all()
    assert (masks == masks[0]).all()
    # a new episode draws a new mask (64 fair coins: equal with probability 2**-64)
    assert not torch.equal(env.reset()["mask"], masks[0])
    env.close()


def test_get_primers_merges_submodules_and_warns_when_there_is_none():
    drop = ConsistentDropoutModule(0.5, in_keys=["features", "mask"], input_shape=(8,))
    policy = Seq(_lstm(), drop)
    primer = get_primers_from_module(policy)
    assert set(primer.primers.keys()) == {"rs_h", "rs_c", "mask"}
    td = primer(__import__("tensordict").TensorDict({}, []))
    assert torch.equal(td["rs_h"], torch.zeros(1, 8))
    assert ((td["mask"] == 0) | (td["mask"] == 2)).all()
    plain = Mod(torch.nn.Linear(3, 1), in_keys=["observation"], out_keys=["action"])
    with pytest.warns(UserWarning, match="no submodule"):
        assert get_primers_from_module(plain) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert get_primers_from_module(plain, warn=False) is None
    with pytest.raises(TypeError, match=r"nn\.Module"):
        get_primers_from_module("not a module")


def test_strict_false_skips_a_failing_primer_and_keeps_the_others():
    policy = Seq(_lstm(), ConsistentDropoutModule(0.5, in_keys=["features", "mask"]))
    with pytest.raises(ValueError, match="input_shape"):
        get_primers_from_module(policy)
    with pytest.warns(UserWarning, match="skipped the primer of ConsistentDropoutModule"):
        primer = get_primers_from_module(policy, strict=False)
    assert set(primer.primers.keys()) == {"rs_h", "rs_c"}


def test_two_submodules_priming_one_key_differently_raise():
    a = GRUModule(input_size=3, hidden_size=4, in_keys=["obs", "h"], out_keys=["f", ("next", "h")])
    b = GRUModule(input_size=4, hidden_size=5, in_keys=["f", "h"], out_keys=["g", ("next", "h")])
    with pytest.raises(ValueError, match="different specs"):
        get_primers_from_module(Seq(a, b))


def test_env_transforms_from_module():
    transforms = get_env_transforms_from_module(_policy(_lstm()), init_key="first")
    assert isinstance(transforms, Compose)
    assert isinstance(transforms[0], InitTracker) and transforms[0].init_key == "first"
    assert isinstance(transforms[1], TensorDictPrimer)
    plain = Mod(torch.nn.Linear(3, 1), in_keys=["observation"], out_keys=["action"])
    assert isinstance(get_env_transforms_from_module(plain), InitTracker)


def test_mappings_and_inv_softplus():
    assert torch.equal(mappings("exp")(torch.zeros(2)), torch.ones(2))
    x = inv_softplus(0.3)
    assert abs(torch.nn.functional.softplus(torch.tensor(x)).item() - 0.3) < 1e-6
    xs = inv_softplus(torch.tensor([0.5, 2.0]))
    torch.testing.assert_close(torch.nn.functional.softplus(xs), torch.tensor([0.5, 2.0]))
    with pytest.raises(ValueError, match="bias > 0"):
        inv_softplus(0.0)
