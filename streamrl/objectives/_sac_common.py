"""Pieces shared by the SAC-family losses (SAC, discrete SAC, REDQ, CrossQ, TQC, TD3): the
reparameterised action sample, the temperature, the critic ensemble, the bootstrapped target
and the ensemble regression loss. One code path each; the losses compose them."""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch import Tensor, nn

from streamrl.data.specs import Composite, TensorSpec
from streamrl.objectives._utils import distance_loss, sample_shape, sum_trailing
from streamrl.objectives.common import LossModule
from streamrl.objectives.value import _composite as composite


def sample_with_log_prob(dist: torch.distributions.Distribution, batch_dims: int
                         ) -> tuple[Tensor, Tensor]:
    """A reparameterised sample and its log-probability summed to the batch shape.

    >>> normal = torch.distributions.Normal(torch.zeros(4, 2), 1.0)
    >>> action, log_prob = sample_with_log_prob(normal, 1)
    >>> action.shape, log_prob.shape
    (torch.Size([4, 2]), torch.Size([4]))
    """
    if not composite.can_rsample(dist):
        raise TypeError(
            f"the actor's distribution {type(dist).__name__} has no rsample; SAC-style losses "
            "need reparameterised samples (e.g. TanhNormal or Normal)"
        )
    if composite.is_composite(dist):
        # one action per head (a TensorDict); the joint log-prob sums the heads'
        action = dist.rsample()
        return action, composite.log_prob_of(dist, action, batch_dims)
    sample_and_log_prob = getattr(dist, "rsample_and_log_prob", None)
    if callable(sample_and_log_prob):  # exact log-prob for squashed distributions that saturate
        action, log_prob = sample_and_log_prob()
    else:
        action = dist.rsample()
        log_prob = dist.log_prob(action)
    return action, sum_trailing(log_prob, batch_dims)


def soft_in_keys(loss: LossModule, *critics: str) -> list[Any]:
    """The inputs of a soft actor-critic loss (its ``in_keys``, what a keyword call takes):
    the stored action, the actor's inputs now and under ``"next"`` (the next action), the
    critics' other inputs now and under ``"next"``, and the next reward / done / terminated."""
    keys: list[Any] = []

    def add(*found: Any) -> None:
        keys.extend(k for k in found if k not in keys)

    def nxt(key: Any) -> tuple:
        return ("next", *key) if isinstance(key, tuple) else ("next", key)

    action = loss._keys["action"]
    add(action)
    for name in ("actor_network", *critics):
        inputs = [k for k in loss.network_in_keys(name) if k != action]
        add(*inputs, *(nxt(k) for k in inputs))
    add(*(loss._next_key(name) for name in ("reward", "done", "terminated")))
    return keys


def soft_in_keys_property(*critics: str) -> property:
    """A loss's ``in_keys`` property (:func:`soft_in_keys` over ``critics``)."""

    def in_keys(loss: LossModule) -> list[Any]:
        extra = ["value_network"] if getattr(loss, "has_value", False) else []
        return soft_in_keys(loss, *critics, *extra)

    in_keys.__doc__ = ("The inputs a call reads (a keyword call takes them, nested parts "
                       "joined by '_').")
    return property(in_keys)


def soft_output_keys(loss: LossModule, *extra_losses: str) -> list[str]:
    """The entries a soft actor-critic loss returns from a keyword call, in order: the
    actor, Q-value and temperature losses, ``alpha`` and ``entropy`` (unless
    ``reduction="none"`` leaves the scalars out), then ``extra_losses``."""
    scalars = ["alpha", "entropy"]
    if loss.reduction == "none" and getattr(loss, "scalar_output_mode", None) == "exclude":
        scalars = []
    return ["loss_actor", "loss_qvalue", "loss_alpha", *scalars, *extra_losses]


def check_target_entropy(target_entropy: Any) -> None:
    """Raise ``TypeError`` unless ``target_entropy`` is ``"auto"`` or a number."""
    if target_entropy != "auto" and not isinstance(target_entropy, (int, float)):
        raise TypeError(f"target_entropy must be 'auto' or a float, found {target_entropy!r}")


def resolve_target_entropy(target_entropy: float | str, action_spec: Any,
                           actor: nn.Module, action_key: Any = "action") -> float | str:
    """``target_entropy`` as a number when it can be known before any data: ``"auto"`` is
    ``-prod(action_spec.shape)``, the spec given or else the actor's spec at ``action_key``;
    ``"auto"`` stays (resolved from the first action) when there is neither.

    >>> from streamrl.data import Bounded
    >>> resolve_target_entropy("auto", Bounded(-1.0, 1.0, shape=(3,)), torch.nn.Identity())
    -3.0
    >>> heads = Composite(action=Composite(a=Bounded(-1.0, 1.0, shape=(2,)),
    ...                                    b=Bounded(-1.0, 1.0, shape=(1,))))
    >>> resolve_target_entropy("auto", heads, torch.nn.Identity())
    -3.0
    """
    check_target_entropy(target_entropy)
    if target_entropy != "auto":
        return float(target_entropy)
    spec = action_spec
    if spec is not None and not isinstance(spec, (TensorSpec, Composite)):
        raise TypeError(
            f"action_spec must be a TensorSpec, a Composite or None, found {type(spec).__name__}"
        )
    if spec is None:
        actor_spec = getattr(actor, "spec", None)
        if isinstance(actor_spec, Composite) and action_key in actor_spec.keys(True):
            spec = actor_spec[action_key]
    container = torch.Size()
    if isinstance(spec, Composite) and action_key in spec.keys(True):
        # the dims after those of the entry's container (TorchRL's rule): an agent group's
        # ("agents", "action") of shape [n_agents, d] counts d, one agent's action
        nested = isinstance(action_key, tuple) and len(action_key) > 1
        container = spec[action_key[:-1]].shape if nested else spec.shape
        spec = spec[action_key]
    elif isinstance(spec, Composite):
        # the action may be another entry of it once ``set_keys`` runs (an agent group's
        # ``("agents", "action")``): looked up at the first batch, as TorchRL's lazy property
        return AutoFromSpec(spec)
    if spec is None:
        return "auto"
    if isinstance(spec, Composite):
        # a composite action (one entry per head): the dims of all its leaves
        return -float(sum(leaf.shape[len(container):].numel()
                          for leaf in spec.values(True, True)))
    return -float(spec.shape[len(container):].numel())


class AutoFromSpec(str):
    """``"auto"``, with the ``Composite`` action spec that resolves it at the first batch,
    at the loss's action key of that moment (:func:`entropy_terms`)."""

    spec: Composite

    def __new__(cls, spec: Composite) -> AutoFromSpec:
        self = super().__new__(cls, "auto")
        self.spec = spec
        return self


def target_entropy_for(target_entropy: float | str, action: Tensor, batch_dims: int) -> float:
    """``target_entropy`` as a number: ``"auto"`` is minus the size of one action (the dims of
    ``action`` after its ``batch_dims`` batch dims).

    >>> target_entropy_for("auto", torch.zeros(8, 3), 1)
    -3.0
    """
    if target_entropy == "auto":
        return -float(action.shape[batch_dims:].numel())
    return float(target_entropy)


def hold_target_entropy(loss: LossModule, target_entropy: float | str) -> None:
    """Keep ``target_entropy`` as ``loss.target_entropy``: a number becomes a scalar buffer on
    the device of the loss's first parameter (it follows ``loss.to()``, as TorchRL's does);
    ``"auto"`` stays a string until the first action resolves it (:func:`entropy_terms`)."""
    if isinstance(target_entropy, str):
        loss._buffers.pop("target_entropy", None)
        loss.__dict__["target_entropy"] = target_entropy
        return
    first = next(iter(loss.parameters()), None)
    loss.register_coeff_buffer("target_entropy", float(target_entropy),
                               device=None if first is None else first.device)


class EntropyCoefficient(nn.Module):
    """The SAC temperature ``alpha``, learned through ``log_alpha`` unless fixed.

    ``loss(entropy_term)`` is ``-log_alpha * entropy_term`` averaged, where ``entropy_term``
    is ``(log_prob + target_entropy)`` (continuous) or ``(target - entropy)`` (discrete), so
    alpha grows when the policy's entropy falls below the target.

    >>> coef = EntropyCoefficient(0.5, fixed=False, min_alpha=None, max_alpha=None)
    >>> coef.alpha()
    tensor(0.5000)
    """

    def __init__(self, alpha_init: float, *, fixed: bool, min_alpha: float | None,
                 max_alpha: float | None) -> None:
        super().__init__()
        if not alpha_init > 0:
            raise ValueError(f"alpha_init must be > 0, found {alpha_init}")
        log_alpha = torch.tensor(math.log(alpha_init))
        if fixed:
            self.register_buffer("log_alpha", log_alpha)
        else:
            self.log_alpha = nn.Parameter(log_alpha)
        self.fixed = fixed
        self.min_log = -math.inf if min_alpha is None else math.log(min_alpha)
        self.max_log = math.inf if max_alpha is None else math.log(max_alpha)

    def alpha(self) -> Tensor:
        """The current coefficient, detached."""
        return self.log_alpha.detach().clamp(self.min_log, self.max_log).exp()

    def loss(self, entropy_term: Tensor) -> Tensor:
        """The temperature loss (zero and gradient-free when alpha is fixed)."""
        return self.per_sample_loss(entropy_term).mean()

    def per_sample_loss(self, entropy_term: Tensor) -> Tensor:
        """``-log_alpha * entropy_term`` for each sample (zeros when alpha is fixed)."""
        if self.fixed:
            return torch.zeros_like(entropy_term.detach())
        return -(self.log_alpha * entropy_term.detach())


class Temperature:
    """Gives a soft loss TorchRL's temperature attributes, read from its ``entropy_coef``:
    ``loss.log_alpha`` (the parameter to give the temperature's optimizer; a buffer when
    ``fixed_alpha``) and ``loss.alpha`` (the current, clamped value, detached)."""

    entropy_coef: EntropyCoefficient

    @property
    def log_alpha(self) -> Tensor:
        """The log-temperature."""
        return self.entropy_coef.log_alpha

    @property
    def alpha(self) -> Tensor:
        """The temperature ``exp(log_alpha)`` clamped to ``[min_alpha, max_alpha]``, detached."""
        return self.entropy_coef.alpha()


def register_actor_critic(loss: LossModule, actor_network: nn.Module,
                          qvalue_network: nn.Module, *, num_qvalue_nets: int,
                          delay_qvalue: bool, delay_actor: bool = False) -> None:
    """Register ``loss``'s ``actor_network`` (with a target copy when ``delay_actor``) and its
    ensemble of ``num_qvalue_nets`` copies of ``qvalue_network`` (with target copies when
    ``delay_qvalue``), and note which critic parameters are the actor's own tensors (for
    ``separate_losses``: see :func:`critic_params`)."""
    actor_ids = {id(p): k for k, p in
                 TensorDict.from_module(actor_network).items(True, True)}
    critic = TensorDict.from_module(qvalue_network)
    loss._shared_with_actor = {k: actor_ids[id(p)] for k, p in critic.items(True, True)
                               if id(p) in actor_ids}
    loss.register_network("actor_network", actor_network, create_target=delay_actor)
    loss.register_network("qvalue_network", qvalue_network, num_copies=num_qvalue_nets,
                          create_target=delay_qvalue)


def critic_params(loss: LossModule, *, target: bool = False) -> TensorDictBase:
    """The critic ensemble's parameters: live (``target=False``) or the bootstrap ones (the
    target copies when ``loss.delay_qvalue``, detached).

    With ``loss.separate_losses``, the parameters the critic shares with the actor (an
    encoder given to both) are the actor's own tensors, detached and repeated over the
    copies, so the critic loss never trains them and every copy sees the actor's version;
    without it, each copy holds (and trains) its own copy of them.
    """
    if target:
        params = loss.network_params("qvalue_network", target=loss.delay_qvalue, detach=True)
    else:
        params = loss.network_params("qvalue_network")
    shared = getattr(loss, "_shared_with_actor", {})
    if not (getattr(loss, "separate_losses", False) and shared):
        return params
    actor = loss.network_params("actor_network", detach=True)
    out = TensorDict({k: v for k, v in params.items(True, True)}, batch_size=params.batch_size)
    copies = params.batch_size[0]
    for critic_key, actor_key in shared.items():
        value = actor.get(actor_key)
        out.set(critic_key, value.unsqueeze(0).expand(copies, *value.shape))
    return out


def fresh_action(loss: LossModule, td: TensorDictBase, batch_dims: int, *,
                 frozen: bool = False) -> tuple[Tensor, Tensor]:
    """``a ~ pi(.|s)`` from ``loss``'s ``actor_network`` on ``td`` (reparameterised) and
    ``log pi(a|s)`` summed to the batch shape; ``frozen=True`` detaches the actor's parameters
    (the next-state action of a target)."""
    params = None
    if frozen:
        params = loss.network_params("actor_network", target=getattr(loss, "delay_actor", False),
                                     detach=True)
    dist = loss.network_dist("actor_network", td.copy(), params)
    return sample_with_log_prob(dist, batch_dims + agent_dims(loss, td))


def agent_dims(loss: LossModule, td: TensorDictBase) -> int:
    """How many agent dims follow ``td``'s batch dims in ``loss``'s rewards (``("next",
    reward)`` of a transition, or ``reward`` of a next state): 1 for an agent group's
    ``[*batch, n_agents, 1]``, so that log-probs stay one per agent (TorchRL's multi-agent
    SAC), else 0."""
    next_key = loss._next_key("reward")
    key = next_key if "next" in td.keys() else next_key[1:]
    return len(sample_shape(td, key)) - td.batch_dims


def qvalues_at(loss: LossModule, td: TensorDictBase, action: Tensor,
               params: TensorDictBase) -> Tensor:
    """Every copy of ``loss``'s ``qvalue_network`` at ``(td, action)`` with ``params``: the
    ``state_action_value`` entries stacked on a leading copy dim (``td`` is left untouched)."""
    return loss.ensemble_output("qvalue_network", td, loss._keys["state_action_value"], params,
                                overrides={loss._keys["action"]: action})


def next_step(loss: LossModule, td: TensorDictBase
              ) -> tuple[TensorDictBase, Tensor, Tensor, TensorDictBase]:
    """The common head of a soft target: checks that ``td`` has the next reward and done, then
    returns the next-state tensordict, a fresh ``a' ~ pi(s')`` and ``log pi(a'|s')`` (no
    gradient; from the target actor when ``loss.delay_actor``) and the critics' bootstrap
    parameters (:func:`critic_params` with ``target=True``).

    With ``loss.skip_done_states`` the actor runs on the non-terminal next states only (a
    terminal state's value is masked out of the target anyway); the others get a zero
    action and log-prob, so the target is unchanged.
    """
    loss._require(td, loss._next_key("reward"), loss._next_key("done"))
    next_td = td.get("next")
    with torch.no_grad():
        next_action, next_log_prob = on_next_states(
            loss, td, lambda nxt: fresh_action(loss, nxt, nxt.batch_dims, frozen=True))
    return next_td, next_action, next_log_prob, critic_params(loss, target=True)


def on_next_states(loss: LossModule, td: TensorDictBase, fn: Any) -> tuple[Tensor, ...]:
    """``fn(td["next"])`` (a tuple of tensors starting with the batch dims), or with
    ``loss.skip_done_states`` ``fn`` of the non-terminal next states only (gathered in one
    batch dim), scattered back with zeros elsewhere."""
    next_td = td.get("next")
    alive = _alive(loss, td) if getattr(loss, "skip_done_states", False) else None
    if alive is None or bool(alive.all()):
        return fn(next_td)
    parts = fn(next_td[alive])
    full = []
    for part in parts:
        value = part.new_zeros((*td.batch_size, *part.shape[1:]))
        value[alive] = part
        full.append(value)
    return tuple(full)


def _alive(loss: LossModule, td: TensorDictBase) -> Tensor:
    """The non-terminal transitions of ``td`` (batch-shaped bool; ``done`` when the batch has
    no ``terminated``): truncated ones still bootstrap, so they keep their next action."""
    flag = td.get(loss._next_key("terminated"), None)
    if flag is None:
        flag = td.get(loss._next_key("done"))
    flag = flag.bool()
    if flag.shape == (*td.batch_size, 1):
        flag = flag.squeeze(-1)
    if flag.shape != td.batch_size:
        raise ValueError(
            f"{type(loss).__name__}(skip_done_states=True): the done flags must have the batch "
            f"shape {tuple(td.batch_size)} (or a trailing 1), found {tuple(flag.shape)}"
        )
    return ~flag


def state_value(loss: LossModule, td: TensorDictBase, params: TensorDictBase | None) -> Tensor:
    """``loss``'s ``value_network`` V(s) on ``td`` with ``params`` (``None``: the live ones):
    its ``value`` entry, which must have the shape ``[*batch, 1]``."""
    value = loss.network_output("value_network", td, "value", params)
    if value.shape != (*td.batch_size, 1):
        raise ValueError(
            f"{type(loss).__name__}: {loss._keys['value']!r} must have shape "
            f"{(*td.batch_size, 1)}, found {tuple(value.shape)}"
        )
    return value


def categorical_log_probs(loss: LossModule, td: TensorDictBase, params: TensorDictBase | None,
                          num_actions: int | None = None) -> Tensor:
    """``log pi(.|s)`` over the actions, ``[*batch, num_actions]``, from the logits of the
    categorical distribution of ``loss``'s ``actor_network`` on ``td`` (``num_actions=None``:
    any number of actions)."""
    dist = loss.network_dist("actor_network", td.copy(), params)
    logits = getattr(dist, "logits", None)
    if logits is None:
        raise TypeError(
            f"{type(loss).__name__}: the actor's distribution {type(dist).__name__} has no "
            "logits; expected a Categorical or OneHotCategorical"
        )
    n = logits.shape[-1] if num_actions is None else num_actions
    if logits.shape != (*td.batch_size, n):
        raise ValueError(
            f"{type(loss).__name__}: the actor's logits must have shape "
            f"{(*td.batch_size, n)}, found {tuple(logits.shape)}"
        )
    return torch.log_softmax(logits, -1)


def bootstrap(loss: LossModule, td: TensorDictBase, next_value: Tensor) -> Tensor:
    """``loss``'s value estimate for ``td`` with ``next_value`` as the next state's value
    (no gradient)."""
    with torch.no_grad():
        return loss.value_estimator.value_estimate(td, next_value=next_value)


def ensemble_regression(loss: LossModule, tensordict: TensorDictBase, pred: Tensor,
                        target: Tensor, *, key: str = "state_action_value"
                        ) -> tuple[Tensor, Tensor]:
    """The critic loss of an ensemble: ``pred`` ``[copies, *shape]`` regressed on ``target``
    ``[*shape]`` with ``loss.loss_function``, summed over copies: one value per transition
    (batch-shaped; its mean is the usual loss).

    Returns the per-sample loss and ``td_error`` (max over copies of ``|pred - target|``, and
    over an agent group's agents; batch-shaped),
    which is also written into ``tensordict`` at the priority key. ``key`` names the
    prediction's entry in the shape error.
    """
    if pred.shape[1:] != target.shape:
        raise ValueError(
            f"{type(loss).__name__}: {loss._keys[key]!r} has shape "
            f"{tuple(pred.shape[1:])} but the reward has shape {tuple(target.shape)}"
        )
    per_net = distance_loss(pred, target.expand_as(pred), loss.loss_function)
    loss_qvalue = per_net.sum(0).reshape(*tensordict.batch_size, -1).mean(-1)
    # one priority per transition: an agent group's largest error
    td_error = (pred.detach() - target).abs().max(0).values.reshape(
        *tensordict.batch_size, -1).max(-1).values
    tensordict.set(loss._keys["priority"], td_error)
    return loss_qvalue, td_error


def entropy_terms(loss: LossModule, log_prob: Tensor, action: Tensor, batch_dims: int,
                  alpha: Tensor, *, per_sample: bool = False) -> dict[str, Tensor]:
    """The temperature entries of a continuous soft loss's output: ``loss_alpha`` (from
    ``loss.entropy_coef``: ``-mean(log_alpha * (log_prob + target_entropy))``, per sample
    when ``per_sample``; ``"auto"`` resolved from ``action`` the first time and kept in
    ``loss.target_entropy``), ``alpha`` and ``entropy`` (``-mean(log_prob)``, detached)."""
    auto = loss.target_entropy
    if isinstance(auto, AutoFromSpec):
        key = loss.tensor_keys.action
        if key not in auto.spec.keys(True):
            raise KeyError(f"action_spec is a Composite without the action key {key!r} "
                           f"(its entries: {auto.spec.keys(True, True)})")
        hold_target_entropy(loss, resolve_target_entropy("auto", auto.spec, loss, key))
    elif isinstance(auto, str):
        hold_target_entropy(loss, target_entropy_for(auto, action, batch_dims))
    target_entropy = loss.target_entropy
    coef = loss.entropy_coef
    return {
        "loss_alpha": (coef.per_sample_loss if per_sample else coef.loss)(
            log_prob + target_entropy),
        "alpha": alpha,
        "entropy": -log_prob.detach().mean(),
    }
