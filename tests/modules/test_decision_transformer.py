"""DecisionTransformer, DTActor, OnlineDTActor and DecisionTransformerInferenceWrapper:
shapes, causality, configs, the std map, the context masking."""

from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn

from streamrl.modules import (
    DecisionTransformer,
    DecisionTransformerInferenceWrapper,
    DTActor,
    OnlineDTActor,
)
from streamrl.modules.models.models import DTActor as DTActorAtTorchRLPath
from streamrl.modules.tensordict_module.actors import (
    DecisionTransformerInferenceWrapper as WrapperAtTorchRLPath,
)

SMALL = {"n_embd": 16, "n_layer": 2, "n_head": 2, "n_inner": 32, "resid_pdrop": 0.0,
         "attn_pdrop": 0.0, "embd_pdrop": 0.0}


def _inputs(*lead, t=6, s=3, a=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*lead, t, s, generator=g), torch.randn(*lead, t, a, generator=g),
            torch.randn(*lead, t, 1, generator=g))


def test_torchrl_paths_and_default_configs():
    assert DTActorAtTorchRLPath is DTActor
    assert WrapperAtTorchRLPath is DecisionTransformerInferenceWrapper
    cfg = DecisionTransformer.default_config()
    assert (cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.n_inner, cfg.activation, cfg.n_positions,
            cfg.resid_pdrop, cfg.attn_pdrop) == (256, 4, 4, 1024, "relu", 1024, 0.1, 0.1)
    for actor in (DTActor, OnlineDTActor):
        cfg = actor.default_config()
        assert (cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.n_inner) == (512, 4, 4, 2048)
    assert cfg is not OnlineDTActor.default_config()  # a fresh one each call


def test_output_is_the_state_tokens_hidden_state_with_any_batch_dims():
    torch.manual_seed(0)
    model = DecisionTransformer(3, 2, SMALL).eval()
    obs, act, rtg = _inputs(2, 4)
    out = model(obs, act, rtg)
    assert out.shape == (2, 4, 6, 16)
    flat = model(obs.reshape(8, 6, 3), act.reshape(8, 6, 2), rtg.reshape(8, 6, 1))
    torch.testing.assert_close(out.reshape(8, 6, 16), flat)
    one = model(obs[1, 2], act[1, 2], rtg[1, 2])  # no batch dim at all
    torch.testing.assert_close(one, out[1, 2])


def test_causality_state_token_t_sees_rtg_and_state_up_to_t_and_actions_before_t():
    torch.manual_seed(0)
    model = DecisionTransformer(3, 2, SMALL).eval()
    obs, act, rtg = _inputs(1)
    base = model(obs, act, rtg)
    t = 3

    def changed(o, a, r):
        return (model(o, a, r) - base).abs().amax(-1)[0] > 1e-6

    act2 = act.clone()
    act2[:, t] += 1.0  # a_t comes after s_t: only steps > t see it
    assert changed(obs, act2, rtg).tolist() == [i > t for i in range(6)]
    obs2 = obs.clone()
    obs2[:, t] += 1.0
    assert changed(obs2, act, rtg).tolist() == [i >= t for i in range(6)]
    rtg2 = rtg.clone()
    rtg2[:, t] += 1.0
    assert changed(obs, act, rtg2).tolist() == [i >= t for i in range(6)]


def test_config_forms_and_errors():
    a = DecisionTransformer(3, 2, DecisionTransformer.DTConfig(**SMALL))
    b = DecisionTransformer(3, 2, {**SMALL, "activation_function": "gelu_new"})
    assert isinstance(b.blocks[0].act, nn.GELU) and b.blocks[0].act.approximate == "tanh"
    assert isinstance(a.blocks[0].act, nn.ReLU)
    assert b.blocks[0].fc_in.out_features == 32
    c = DecisionTransformer(3, 2, {**SMALL, "n_inner": None})
    assert c.blocks[0].fc_in.out_features == 4 * 16  # GPT-2's default inner size
    assert len(a.blocks) == 2
    with pytest.raises(ValueError, match="unknown config entries"):
        DecisionTransformer(3, 2, {"n_embd": 16, "vocab_size": 3})
    with pytest.raises(ValueError, match="divisible by n_head"):
        DecisionTransformer(3, 2, {"n_embd": 10, "n_head": 4})
    with pytest.raises(ValueError, match="activation"):
        DecisionTransformer(3, 2, {**SMALL, "activation": "nope"})
    with pytest.raises(TypeError, match="config"):
        DecisionTransformer(3, 2, 5)
    with pytest.raises(ValueError, match="state_dim"):
        DecisionTransformer(0, 2, SMALL)
    model = DecisionTransformer(3, 2, {**SMALL, "n_positions": 12})
    obs, act, rtg = _inputs(1, t=5)
    with pytest.raises(ValueError, match="needs 15 positions"):
        model(obs, act, rtg)
    with pytest.raises(ValueError, match=r"expected action of shape \[\*B, T, 2\]"):
        model(obs[:, :4], act[..., :1][:, :4], rtg[:, :4])
    with pytest.raises(ValueError, match="leading shape"):
        model(obs[:, :4], act[:, :3], rtg[:, :4])


def test_dt_actor_is_a_linear_head_on_the_transformer():
    torch.manual_seed(0)
    actor = DTActor(3, 2, SMALL).eval()
    obs, act, rtg = _inputs(4)
    hidden = actor.transformer(obs, act, rtg)
    expected = hidden @ actor.action_layer.weight.T + actor.action_layer.bias
    torch.testing.assert_close(actor(obs, act, rtg), expected)
    assert (actor.action_layer.bias == 0).all()
    w = actor.action_layer.weight  # orthogonal init: rows orthonormal
    torch.testing.assert_close(w @ w.T, torch.eye(2), atol=1e-5, rtol=0)


def test_online_dt_actor_std_maps_tanh_to_minus5_2():
    torch.manual_seed(0)
    actor = OnlineDTActor(3, 2, SMALL).eval()
    obs, act, rtg = _inputs(4)
    mu, std = actor(obs, act, rtg)
    hidden = actor.transformer(obs, act, rtg)
    squashed = torch.tanh(actor.action_layer_logstd(hidden))
    torch.testing.assert_close(std.log(), -5.0 + 3.5 * (squashed + 1.0))
    torch.testing.assert_close(mu, actor.action_layer_mean(hidden))
    with torch.no_grad():  # saturate the head: std reaches the bounds exactly
        actor.action_layer_logstd.bias.fill_(100.0)
        assert torch.allclose(actor(obs, act, rtg)[1], torch.full((4, 6, 2), math.exp(2.0)))
        actor.action_layer_logstd.bias.fill_(-100.0)
        assert torch.allclose(actor(obs, act, rtg)[1], torch.full((4, 6, 2), math.exp(-5.0)))


class _Recorder(nn.Module):
    """Records what the wrapper shows it; predicts ``obs.sum + 10 * t`` for each step."""

    def __init__(self):
        super().__init__()
        self.seen = None

    def forward(self, observation, action, return_to_go):
        self.seen = (observation.clone(), action.clone(), return_to_go.clone())
        t = torch.arange(observation.shape[-2], dtype=observation.dtype).unsqueeze(-1)
        return observation.sum(-1, keepdim=True).expand(*observation.shape[:-1], 2) + 10 * t


def _seq_td(t=5, batch=(1,)):
    obs = torch.arange(1.0, t + 1).reshape(1, t, 1).expand(*batch, t, 1).clone()
    act = 100 + obs.expand(*batch, t, 2).clone()
    rtg = -obs.clone()
    return TensorDict({"observation": obs, "action": act, "return_to_go": rtg}, list(batch))


@pytest.mark.parametrize("ctx", [1, 2, 3, 5, 7])
def test_inference_wrapper_masks_the_context_and_shifts_actions(ctx):
    rec = _Recorder()
    wrapper = DecisionTransformerInferenceWrapper(
        TensorDictModule(rec, ["observation", "action", "return_to_go"], ["action"]),
        inference_context=ctx)
    td = _seq_td()
    out = wrapper(td)
    obs_seen, act_seen, rtg_seen = (x[0, :, 0].tolist() for x in rec.seen)
    kept = [i >= 5 - ctx for i in range(5)]
    assert obs_seen == [v if k else 0.0 for v, k in zip([1.0, 2.0, 3.0, 4.0, 5.0], kept)]
    assert rtg_seen == [v if k else 0.0 for v, k in zip([-1.0, -2.0, -3.0, -4.0, -5.0], kept)]
    # slot t holds the input's action t+1; the last slot (to predict) is zero
    shifted = [102.0, 103.0, 104.0, 105.0, 0.0]
    assert act_seen == [v if k else 0.0 for v, k in zip(shifted, kept)]
    # output: the last step's prediction (masked obs 5 + 10 * 4), the last rtg, full obs
    assert out["action"].tolist() == [[45.0, 45.0]]
    assert out["return_to_go"].tolist() == [[-5.0]]
    assert out["observation"].squeeze(-1).tolist() == [[1.0, 2.0, 3.0, 4.0, 5.0]]
    assert td["action"].shape == (1, 5, 2)  # the input is not modified
    assert td["observation"].squeeze(-1).tolist() == [[1.0, 2.0, 3.0, 4.0, 5.0]]


def test_inference_wrapper_time_as_a_batch_dim_and_custom_keys():
    rec = _Recorder()
    module = TensorDictModule(rec, ["obs", "act", "rtg"], ["pred"])
    wrapper = DecisionTransformerInferenceWrapper(module, inference_context=2)
    with pytest.raises(ValueError, match="out_action"):
        wrapper.set_tensor_keys(out_action="nope")
    with pytest.raises(TypeError, match="unknown keys"):
        wrapper.set_tensor_keys(reward="r")
    wrapper.set_tensor_keys(observation="obs", action="act", return_to_go="rtg", out_action="pred")
    assert wrapper.in_keys == ["obs", "act", "rtg"]
    assert set(wrapper.out_keys) == {"obs", "act", "rtg", "pred"}
    td = _seq_td(batch=(3,))
    td = TensorDict({"obs": td["observation"], "act": td["action"], "rtg": td["return_to_go"]},
                    [3, 5])  # the time dim is a batch dim
    out = wrapper(td)
    assert out.batch_size == (3,)
    assert out["pred"].shape == (3, 2) and out["rtg"].shape == (3, 1)
    assert out["act"].shape == (3, 5, 2)  # the input actions, shifted and masked
    assert out["act"][0, :, 0].tolist() == [0.0, 0.0, 0.0, 105.0, 0.0]
    with pytest.raises(KeyError, match="obs"):
        wrapper(td.exclude("obs"))


def test_inference_wrapper_bad_arguments():
    module = TensorDictModule(_Recorder(), ["observation", "action", "return_to_go"], ["action"])
    with pytest.raises(ValueError, match="inference_context"):
        DecisionTransformerInferenceWrapper(module, inference_context=0)
    with pytest.raises(TypeError, match="TensorDict module"):
        DecisionTransformerInferenceWrapper(_Recorder())
    wrapper = DecisionTransformerInferenceWrapper(module)
    td = _seq_td()
    td["action"] = torch.zeros(1, 4, 2)
    with pytest.raises(ValueError, match="same"):
        wrapper(td)


@pytest.mark.parametrize("cls", [DTActor, OnlineDTActor])
def test_device_argument_places_every_parameter(cls):
    actor = cls(3, 2, SMALL, device="meta")
    assert {p.device.type for p in actor.parameters()} == {"meta"}
