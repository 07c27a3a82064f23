"""Shared machinery of the on-policy losses (PPO, A2C, REINFORCE): advantages, log-probs,
entropy and the critic loss."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torch import Tensor, nn

from streamrl.objectives import _loss_options as opts
from streamrl.objectives._network_calls import DistCaller, NetworkCaller
from streamrl.objectives._utils import (
    check_loss_function,
    distance_loss,
    sample_shape,
    sum_trailing,
)
from streamrl.objectives.common import LossModule
from streamrl.objectives.value import _composite as composite
from streamrl.objectives.value.common import ValueEstimators


class OnPolicyLoss(LossModule):
    """Base of the on-policy losses: an actor (probabilistic) and an optional critic.

    If the input has no ``advantage``, the value estimator (GAE by default) computes
    ``advantage`` and ``value_target`` with the critic (detached) and writes them, together
    with ``state_value``, into the input. The behaviour policy's log-probability is read
    from ``tensor_keys.sample_log_prob`` (``"action_log_prob"``, TorchRL 0.14's key); when a
    batch lacks it, the actor's own ``log_prob_key`` and then ``"sample_log_prob"`` (the
    seed's key) are tried. Per-dimension log-probs are summed to the batch shape.

    The coefficients (``entropy_coeff``, ``critic_coeff``, and the subclasses' ``clip_value``
    ...) are scalar buffers on ``device`` (default: the device of the networks' first
    parameter); the networks are never moved. A number assigned to one
    (``loss.entropy_coeff = 0.003``) updates it in place. With ``functional=False`` the
    networks are held as plain submodules (``loss.actor_network``, ``loss.critic_network``)
    and ``loss.actor_network_params`` / ``loss.critic_network_params`` are ``None``.
    """

    default_keys = {
        "action": "action",
        "sample_log_prob": "action_log_prob",
        "advantage": "advantage",
        "value_target": "value_target",
        "value": "state_value",
        "reward": "reward",
        "done": "done",
        "terminated": "terminated",
    }
    default_value_estimator = ValueEstimators.GAE
    _estimator_key_map = {
        "reward": "reward",
        "done": "done",
        "terminated": "terminated",
        "value": "value",
        "advantage": "advantage",
        "value_target": "value_target",
        "sample_log_prob": "sample_log_prob",
        "action": "action",
    }

    def __init__(
        self,
        actor_network: nn.Module,
        critic_network: nn.Module | None,
        *,
        entropy_bonus: bool,
        entropy_coeff: float,
        critic_coeff: float | None,
        loss_critic_type: str,
        normalize_advantage: bool,
        samples_mc_entropy: int = 1,
        separate_losses: bool = False,
        reduction: str | None = None,
        normalize_advantage_exclude_dims: tuple[int, ...] = (),
        advantage_norm: nn.Module | None = None,
        functional: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        opts.apply_options(self, reduction=reduction)
        if not isinstance(normalize_advantage_exclude_dims, (tuple, list)) or not all(
                isinstance(d, int) and not isinstance(d, bool)
                for d in normalize_advantage_exclude_dims):
            raise TypeError(
                "normalize_advantage_exclude_dims must be a tuple of ints, found "
                f"{normalize_advantage_exclude_dims!r}"
            )
        self.normalize_advantage_exclude_dims = tuple(normalize_advantage_exclude_dims)
        if advantage_norm is not None:
            if normalize_advantage:
                raise ValueError(
                    "normalize_advantage=True and advantage_norm are mutually exclusive: "
                    "give one of them"
                )
            if not (callable(getattr(advantage_norm, "scale", None))
                    and callable(getattr(advantage_norm, "update", None))):
                raise TypeError(
                    "advantage_norm must be a ValueNorm (with scale() and update()), found "
                    f"{type(advantage_norm).__name__}"
                )
        self.advantage_norm = advantage_norm
        if isinstance(samples_mc_entropy, bool) or not isinstance(samples_mc_entropy, int) \
                or samples_mc_entropy < 1:
            raise ValueError(
                f"samples_mc_entropy must be a positive int, found {samples_mc_entropy!r}"
            )
        self.samples_mc_entropy = samples_mc_entropy
        self.separate_losses = bool(separate_losses)
        self.loss_critic_type = check_loss_function(loss_critic_type)
        self.entropy_bonus = entropy_bonus
        self.normalize_advantage = normalize_advantage
        self.has_critic = critic_network is not None
        self.register_network("actor_network", actor_network, functional=functional)
        if critic_network is not None:
            self.register_network("critic_network", critic_network, functional=functional)
        if device is None:
            first = next(iter(self.parameters()), None)
            device = torch.get_default_device() if first is None else first.device
        #: where the coefficient buffers live (TorchRL's ``device=``)
        self._coeff_device = torch.device(device)
        self.register_coeff_buffer("entropy_coeff", entropy_coeff, device=device)
        self.register_coeff_buffer("critic_coeff", critic_coeff, device=device)
        self._keys_from_actor(actor_network)

    def _keys_from_actor(self, actor: nn.Module) -> None:
        """Read the action and behaviour log-prob where the actor writes them (its
        ``dist_sample_keys`` / ``log_prob_keys``: one key, or one per head of a composite
        distribution); actors without these attributes leave the defaults."""
        try:
            samples = list(actor.dist_sample_keys)
            log_probs = list(actor.log_prob_keys)
        except (AttributeError, RuntimeError, TypeError):
            return
        if not samples or len(samples) != len(log_probs):
            return
        if len(samples) == 1:
            self.set_keys(action=samples[0], sample_log_prob=log_probs[0])
        else:
            self.set_keys(action=samples, sample_log_prob=log_probs)

    @property
    def entropy_coef(self) -> Tensor:
        """The older spelling of :attr:`entropy_coeff`."""
        return self.entropy_coeff

    @property
    def critic_coef(self) -> Tensor | None:
        """The older spelling of :attr:`critic_coeff`."""
        return self.critic_coeff

    @property
    def _critic_loss_on(self) -> bool:
        return self.has_critic and self.critic_coeff is not None

    def _estimator_value_network(self) -> Callable[[TensorDictBase], Any] | None:
        return NetworkCaller(self, "critic_network") if self.has_critic else None

    def _estimator_actor_network(self) -> Any:
        return DistCaller(self, "actor_network")

    def _estimator_value_key(self) -> NestedKey:
        return self._keys["value"]

    # ------------------------------------------------------------ advantage
    def _fill_advantage(self, td: TensorDictBase) -> None:
        if td.get(self._keys["advantage"], None) is not None:
            return
        self._fresh_advantage(td)
        if self.advantage_norm is not None and self.training:
            # statistics follow the fresh value targets only: repeated passes over a
            # rollout whose advantage is already stored do not skew them
            self.advantage_norm.update(self._get(td, "value_target").detach())

    def _fresh_advantage(self, td: TensorDictBase) -> None:
        if not self.has_critic:
            # no critic: values are zero, the targets are plain (discounted) returns
            work = td.copy()
            reward = self._require_reward(td)
            work.set(self._keys["value"], torch.zeros_like(reward))
            work.set(self._next_key("value"), torch.zeros_like(reward))
            self.value_estimator(work)
            td.set(self._keys["advantage"], work.get(self._keys["advantage"]))
            td.set(self._keys["value_target"], work.get(self._keys["value_target"]))
            return
        self._require_reward(td)
        self.value_estimator(td)

    def _require_reward(self, td: TensorDictBase) -> Tensor:
        self._require(td, self._next_key("reward"), self._next_key("done"))
        return td.get(self._next_key("reward"))

    def advantage(self, td: TensorDictBase) -> Tensor:
        """The advantage with the batch shape (computed if missing), standardised over the
        batch dims not in ``normalize_advantage_exclude_dims`` when ``normalize_advantage``,
        or divided by ``advantage_norm.scale()`` (not re-centred) when given."""
        self._fill_advantage(td)
        adv = self._get(td, "advantage")
        if self.advantage_norm is not None:
            adv = adv / self.advantage_norm.scale().to(adv)
        adv = self._batch_shaped(adv, td, "advantage")
        if self.normalize_advantage and adv.numel() > 1:
            adv = _standardize(adv, self.normalize_advantage_exclude_dims)
        return adv.detach()

    def sample_shape(self, td: TensorDictBase) -> torch.Size:
        """The shape of the per-sample loss terms: the batch shape, followed by the agent
        dims when the advantage has them (a multi-agent group: ``[*batch, n_agents, 1]``
        advantages give one term per agent, each with its own ratio, as TorchRL's MAPPO /
        IPPO do). Read from the stored advantage; the batch shape before there is one."""
        return sample_shape(td, self._keys["advantage"])

    def _batch_shaped(self, x: Tensor, td: TensorDictBase, name: str) -> Tensor:
        shape = self.sample_shape(td)
        if x.shape == shape:
            return x
        if x.shape == (*shape, 1):
            return x.squeeze(-1)
        raise ValueError(
            f"{type(self).__name__}: {self._keys.get(name, name)!r} must have shape "
            f"{tuple(shape)} or {(*shape, 1)}, found {tuple(x.shape)}"
        )

    # ------------------------------------------------------------ policy
    def log_prob(self, td: TensorDictBase) -> tuple[torch.distributions.Distribution, Tensor]:
        """The actor's distribution on ``td`` and the log-prob of the stored action.

        For a composite (multi-head) distribution, the ``action`` key may name the action
        TensorDict, one head's entry or a list of entries; the log-prob is the sum over the
        heads. A stored action that requires grad is refused (``RuntimeError``): gradients
        would flow into whatever produced the data. The log-prob has :meth:`sample_shape`
        (one per agent of a group).
        """
        shape = self.sample_shape(td)
        dims = len(shape)
        dist = self.network_dist("actor_network", td.copy())
        if composite.is_composite(dist):
            keys = self._keys["action"]
            keys = list(keys) if isinstance(keys, list) else [keys]
            self._require(td, *keys)
            action = td.select(*keys)
            _refuse_grad(action, keys)
            return dist, composite.log_prob_of(dist, action, dims)
        action = self._get(td, "action")
        _refuse_grad(action, self._keys["action"])
        lp = dist.log_prob(action)
        if lp.shape[:dims] != shape or lp.shape != action.shape[: lp.ndim]:
            raise ValueError(
                f"{type(self).__name__}: log_prob of action with shape {tuple(action.shape)} "
                f"has shape {tuple(lp.shape)}; expected the sample shape {tuple(shape)} "
                "followed by action dims (check the action's trailing dims)"
            )
        return dist, sum_trailing(lp, dims)

    def old_log_prob(self, td: TensorDictBase) -> Tensor:
        """The behaviour policy's log-prob, summed to :meth:`sample_shape`."""
        shape = self.sample_shape(td)
        key = self._keys["sample_log_prob"]
        if isinstance(key, list):  # one entry per head of a composite action: their sum
            self._require(td, *key)
            return composite.joint(td.select(*key), len(shape)).detach()
        value = td.get(key, None)
        if value is None and key == self.default_keys["sample_log_prob"]:
            actor_key = getattr(self.network_template("actor_network"), "log_prob_key", None)
            for fallback in (actor_key, "sample_log_prob"):
                if fallback is not None and value is None:
                    value = td.get(fallback, None)
        if value is None:
            self._get(td, "sample_log_prob")  # raises the KeyError naming the loss
        if value.shape[: len(shape)] != shape:
            raise ValueError(
                f"{type(self).__name__}: {key!r} must start with the sample shape "
                f"{tuple(shape)}, found {tuple(value.shape)}"
            )
        return sum_trailing(value, len(shape)).detach()

    def entropy(self, dist: torch.distributions.Distribution, batch_dims: int) -> Tensor:
        """Exact entropy when the distribution has one, else a Monte-Carlo estimate over
        ``samples_mc_entropy`` samples."""
        try:
            ent = dist.entropy()
        except NotImplementedError:
            shape = torch.Size([self.samples_mc_entropy])
            sample = dist.rsample(shape) if composite.can_rsample(dist) else dist.sample(shape)
            return -composite.joint(dist.log_prob(sample), batch_dims + 1).mean(0)
        return composite.joint(ent, batch_dims)

    def entropy_terms(self, dist: torch.distributions.Distribution, td: TensorDictBase
                      ) -> dict[str, Tensor]:
        """``loss_entropy`` (when ``entropy_bonus``) and the ``entropy`` diagnostic."""
        if not self.entropy_bonus:  # only the diagnostic: no autograd graph to build
            with torch.no_grad():
                return {"entropy": self.entropy(dist, len(self.sample_shape(td))).mean()}
        ent = self.entropy(dist, len(self.sample_shape(td)))
        out = {"entropy": ent.detach().mean()}
        if self.entropy_bonus:
            out["loss_entropy"] = -self.entropy_coeff * ent
        return out

    # ------------------------------------------------------------ critic
    def _critic_params(self) -> TensorDictBase | None:
        """The critic's parameters; with ``separate_losses``, the ones it shares with the
        actor are detached so that only the policy loss trains them."""
        if not self.separate_losses:
            return None
        live = self.network_params("critic_network")
        actor = {id(p) for p in self.network_params("actor_network").values(True, True)}
        params = live.detach()
        for key, value in live.items(True, True):
            if id(value) not in actor:
                params.set(key, value)
        return params

    def critic_loss(self, td: TensorDictBase, clip_value: float | None = None, *,
                    per_sample: bool = False) -> tuple[Tensor, Tensor]:
        """``critic_coeff * mean d(V(s), value_target)`` (optionally with value clipping; one
        value per sample with ``per_sample``) and the explained variance
        ``1 - Var(target - V) / Var(target)`` (detached)."""
        target = self._get(td, "value_target").detach()
        old_value = None
        if clip_value is not None:
            old_value = self._get(td, "value").detach()
        value = self.network_output("critic_network", td, "value", self._critic_params())
        if value.shape != target.shape:
            raise ValueError(
                f"{type(self).__name__}: {self._keys['value']!r} has shape {tuple(value.shape)} "
                f"but {self._keys['value_target']!r} has shape {tuple(target.shape)}"
            )
        loss = distance_loss(value, target, self.loss_critic_type)
        if old_value is not None:
            clipped = old_value + (value - old_value).clamp(-clip_value, clip_value)
            loss = torch.maximum(loss, distance_loss(clipped, target, self.loss_critic_type))
        coeff = 1.0 if self.critic_coeff is None else self.critic_coeff
        with torch.no_grad():
            explained = 1 - (target - value).var(unbiased=False) / target.var(
                unbiased=False).clamp_min(1e-8)
        if per_sample:
            return coeff * loss.reshape(*self.sample_shape(td), -1).mean(-1), explained
        return coeff * loss.mean(), explained

    def output(self, td: TensorDictBase, out: dict[str, Tensor]) -> TensorDictBase:
        """The loss output: the per-sample ``loss_*`` entries of ``out`` reduced with
        ``reduction``, the other entries kept as diagnostics (only the entries chosen with
        :meth:`select_out_keys`, when called)."""
        losses = {k: v for k, v in out.items() if k.startswith("loss_")}
        return opts.loss_output(self, td, losses,
                                {k: v for k, v in out.items() if k not in losses})

    # ------------------------------------------------------- keys in and out
    def _entropy_and_critic_keys(self) -> list[str]:
        keys = ["entropy"] + (["loss_entropy"] if self.entropy_bonus else [])
        return keys + (["loss_critic"] if self._critic_loss_on else [])

    @property
    def in_keys(self) -> list[NestedKey]:
        """The input entries the loss reads: the stored action(s) and behaviour log-prob(s),
        the actor's inputs, the critic's inputs (now and under ``"next"``) and the next
        reward / done / terminated flags. A keyword call takes these (nested parts joined
        with ``"_"``: ``loss(observation=..., next_reward=..., ...)``)."""
        keys: list[NestedKey] = []

        def add(*found: NestedKey) -> None:
            keys.extend(k for k in found if k not in keys)

        for name in ("action", "sample_log_prob"):
            key = self._keys[name]
            add(*(key if isinstance(key, list) else [key]))
        add(*self.network_in_keys("actor_network"))
        if self.has_critic:
            for key in self.network_in_keys("critic_network"):
                add(key, ("next", *key) if isinstance(key, tuple) else ("next", key))
        add(*(self._next_key(name) for name in ("reward", "done", "terminated")))
        return keys



def _standardize(adv: Tensor, exclude_dims: tuple[int, ...]) -> Tensor:
    """``adv`` standardised over every dim but ``exclude_dims`` (negative dims allowed)."""
    exclude = set()
    for dim in exclude_dims:
        if not -adv.ndim <= dim < adv.ndim:
            raise ValueError(
                f"normalize_advantage_exclude_dims: dim {dim} is out of range for an advantage "
                f"with batch shape {tuple(adv.shape)}"
            )
        exclude.add(dim % adv.ndim)
    dims = tuple(d for d in range(adv.ndim) if d not in exclude)
    if not dims:
        return adv
    mean = adv.mean(dims, keepdim=True)
    std = adv.std(dims, keepdim=True) if adv.numel() > 1 else torch.ones_like(adv)
    return (adv - mean) / std.clamp_min(1e-8)


def _refuse_grad(action: Tensor | TensorDictBase, key: Any) -> None:
    leaves = action.values(True, True) if isinstance(action, TensorDictBase) else [action]
    if any(leaf.requires_grad for leaf in leaves):
        raise RuntimeError(
            f"the tensordict stored action at {key!r} requires grad: the losses take "
            "collected data (detach it, e.g. collect under torch.no_grad())"
        )


def resolve_networks(owner: str, actor_network: Any, critic_network: Any, actor: Any,
                     critic: Any, *, gamma: Any = None, functional: Any = True,
                     **deprecated_keys: Any) -> tuple[nn.Module, Any]:
    """The on-policy constructors' TorchRL spellings: ``actor=`` / ``critic=`` are the older
    names of the networks (giving both names of one is an error), ``actor_network`` is
    required, ``gamma`` and the ``*_key`` arguments are refused as TorchRL 0.14 refuses them,
    and ``functional`` must be a bool."""
    if actor is not None:
        if actor_network is not None:
            raise TypeError(f"{owner}: give actor_network or its older name actor, not both")
        actor_network = actor
    if critic is not None:
        if critic_network is not None:
            raise TypeError(f"{owner}: give critic_network or its older name critic, not both")
        critic_network = critic
    if actor_network is None:
        raise TypeError(f"{owner}: missing the actor_network argument")
    opts.refuse_ctor_gamma(gamma, owner)
    opts.refuse_ctor_keys(owner, **deprecated_keys)
    if not isinstance(functional, bool):
        raise TypeError(f"{owner}: functional must be True or False, found {functional!r}")
    return actor_network, critic_network


def check_coeff(owner: str, name: str, value: Any) -> Any:
    """An optional coefficient (``clip_value``, ``max_importance_ratio``): ``None``, or a
    number / one-element tensor > 0 (``True``/``False`` are refused as TorchRL refuses them)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Tensor)) or (
            isinstance(value, Tensor) and value.numel() != 1):
        raise ValueError(f"{name} must be a float or a scalar tensor, got {value}.")
    if not float(value) > 0:
        raise ValueError(f"{owner}: {name} must be > 0 or None, found {float(value)}")
    return value


def resolve_coeffs(owner: str, entropy_coeff: float | None, entropy_coef: float | None,
                   critic_coeff: Any, critic_coef: Any) -> tuple[Any, Any]:
    """TorchRL 0.14's ``entropy_coeff``/``critic_coeff`` and the older ``*_coef`` spellings.

    Giving both spellings of one coefficient is an error; ``entropy_coeff=None`` means 0.01
    and ``critic_coeff=None`` leaves the critic loss out.
    """
    if entropy_coef is not None:
        if entropy_coeff is not None:
            raise ValueError(
                f"{owner}: give entropy_coeff or its older spelling entropy_coef, not both "
                f"(found {entropy_coeff} and {entropy_coef})"
            )
        entropy_coeff = entropy_coef
    if critic_coef is not None:
        if critic_coeff is not _UNSET:
            raise ValueError(
                f"{owner}: give critic_coeff or its older spelling critic_coef, not both "
                f"(found {critic_coeff} and {critic_coef})"
            )
        critic_coeff = critic_coef
    if critic_coeff is _UNSET:
        critic_coeff = 1.0
    return (0.01 if entropy_coeff is None else entropy_coeff), critic_coeff


class _Unset:
    def __repr__(self) -> str:
        return "1.0"


#: marks "not given" for critic_coeff, whose None means "no critic loss"
_UNSET: Any = _Unset()
