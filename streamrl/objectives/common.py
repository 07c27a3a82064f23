"""LossModule: the base class of every loss.

A loss holds the parameters of its networks as :class:`~tensordict.nn.TensorDictParams`
(``loss.<name>_params``) and, when asked, detached target copies
(``loss.target_<name>_params``, buffers: they get no gradient and the optimizer never sees
them). A network is called functionally: its parameters are swapped into a parameter-less
template with :meth:`~tensordict.TensorDictBase.to_module`, so the same network runs with
live, detached or target parameters, and an ensemble of copies (twin Q) runs in one
:func:`torch.vmap` call over stacked parameters.

Single networks share their parameters with the module the user passed in (the policy
given to a collector and the loss's actor stay the same tensors). Ensembles get new stacked
parameters: copy 0 starts from the given module, the others are re-initialised.

The calls themselves (plans, parameter swaps, vmapped ensembles) live in
:mod:`streamrl.objectives._network_calls`.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictParams
from tensordict.utils import NestedKey
from torch import Tensor, nn

from streamrl._utils import rl_warnings
from streamrl._utils.swap import params_in
from streamrl._warnings import StreamRLWarning
from streamrl.objectives import _network_calls as calls
from streamrl.objectives._network_plan import NetworkPlan
from streamrl.objectives.value._accepted_keys import sync_key_declarations
from streamrl.objectives.value.common import (
    ValueEstimatorBase,
    ValueEstimators,
    _KeyView,
    default_value_kwargs,
)
from streamrl.objectives.value.estimators import make_estimator

__all__ = ["BOOTSTRAP_ESTIMATORS", "TD_KEYS", "LossModule"]

#: the estimators of the losses that bootstrap from a (target) critic on sampled transitions:
#: no advantage over a policy's own values, so no GAE / MAGAE / V-trace (TorchRL's set)
BOOTSTRAP_ESTIMATORS: tuple[ValueEstimators, ...] = (
    ValueEstimators.TD0,
    ValueEstimators.TD1,
    ValueEstimators.TDLambda,
)

#: the keys every loss with a TD target reads (and ``priority``, where it writes ``td_error``)
TD_KEYS: dict[str, str] = {
    "priority": "td_error",
    "reward": "reward",
    "done": "done",
    "terminated": "terminated",
}


def _has_uninitialized(module: nn.Module) -> bool:
    return any(isinstance(p, nn.parameter.UninitializedParameter)
               for p in module.parameters())


def _reset_copy(module: nn.Module) -> bool:
    """Re-initialise ``module`` in place; False when nothing in it knows how."""
    found = False
    for sub in module.modules():
        reset = getattr(sub, "reset_parameters", None)
        if callable(reset):
            reset()
            found = True
    return found


class LossModule(nn.Module):
    """Base class of the losses.

    Subclasses declare ``default_keys`` (name -> tensordict key), ``default_value_estimator``
    and, if they bootstrap, ``supported_value_estimators``; they register their networks
    with :meth:`register_network` and implement ``forward(tensordict) -> TensorDict``. The
    output's ``loss_*`` entries sum to the training loss (:func:`~streamrl.objectives.total_loss`);
    other entries are detached diagnostics.

    Keys are renamed with :meth:`set_keys` (for example ``loss.set_keys(reward="r")``); the
    value estimator follows. Missing input keys raise a ``KeyError`` that names the key and
    the loss.

    Networks with lazy layers (``nn.LazyLinear``...) are accepted: the loss initialises them
    on its first call, by running them on the input, and only then creates their target
    and ensemble copies. A single network shares its parameters with the module given, so
    an optimizer built before that call sees them initialised; for ensembles
    (``num_qvalue_nets``) build the optimizer after the first call.
    """

    default_keys: ClassVar[dict[str, NestedKey]] = {}
    #: run ensembles with a Python loop over the copies instead of :func:`torch.vmap`
    #: (the losses' ``deactivate_vmap=True``: for networks vmap cannot trace)
    deactivate_vmap: bool = False
    default_value_estimator: ClassVar[ValueEstimators | None] = None
    supported_value_estimators: ClassVar[tuple[ValueEstimators, ...]] = tuple(ValueEstimators)
    #: the keys of ``default_keys`` that the value estimator shares, as {loss name: estimator name}
    _estimator_key_map: ClassVar[dict[str, str]] = {
        "reward": "reward",
        "done": "done",
        "terminated": "terminated",
    }
    #: the coefficient buffers (see :meth:`register_coeff_buffer`) a plain number may be
    #: assigned to (``loss.entropy_coeff = 0.003``): the buffer is filled in place, keeping
    #: its device and dtype. A subclass's set adds to its bases' (``_all_schedulable_buffers``).
    _schedulable_buffers: ClassVar[frozenset[str]] = frozenset()
    _all_schedulable_buffers: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # default_keys and TorchRL's _AcceptedKeys dataclass: either declares the keys
        sync_key_declarations(cls)
        merged: frozenset[str] = frozenset()
        for klass in cls.__mro__:
            merged |= frozenset(vars(klass).get("_schedulable_buffers", ()))
        cls._all_schedulable_buffers = merged

    def __init__(self) -> None:
        super().__init__()
        self._keys: dict[str, NestedKey] = dict(self.default_keys)
        self._templates: dict[str, nn.Module] = {}
        # networks registered with functional=False: held as plain submodules
        self._stateful: set[str] = set()
        self._num_copies: dict[str, int | None] = {}
        self._target_names: list[str] = []
        self._value_estimator: ValueEstimatorBase | None = None
        self.value_type: ValueEstimators | type | None = None
        # lazy networks waiting for their first input: name -> (module, num_copies, target)
        self._lazy: dict[str, tuple[nn.Module, int | None, bool]] = {}
        self._lazy_hook: Any = None
        # set by a TargetNetUpdater built on this loss (SoftUpdate, HardUpdate)
        self._has_update_associated = False
        self._warned_no_updater = False
        # name -> its NetworkPlan (None: no plan), built on first call
        self._plans: dict[str, NetworkPlan | None] = {}

    # ------------------------------------------------------------------ keys
    @property
    def tensor_keys(self) -> _KeyView:
        """Read-only view of the keys in use: ``loss.tensor_keys.reward`` or ``["reward"]``."""
        return _KeyView(self._keys)

    def set_keys(self, **keys: NestedKey) -> LossModule:
        """Rename input/output keys, e.g. ``set_keys(reward="r")``; returns ``self``."""
        for name, key in keys.items():
            if name not in self._keys:
                raise ValueError(
                    f"{type(self).__name__} has no key {name!r}; valid keys: {sorted(self._keys)}"
                )
            if key is not None:
                self._keys[name] = key
        self._sync_estimator_keys()
        return self

    def _sync_estimator_keys(self) -> None:
        if self._value_estimator is None:
            return
        known = self._value_estimator.tensor_keys
        mapping = {est: self._keys[name] for name, est in self._estimator_key_map.items()
                   if name in self._keys and est in known}
        self._value_estimator.set_keys(**mapping)

    def _require(self, td: TensorDictBase, *keys: NestedKey) -> None:
        """Raise a KeyError naming this loss for the first of ``keys`` missing from ``td``."""
        for key in keys:
            if td.get(key, None) is None:
                raise KeyError(
                    f"{type(self).__name__} needs the key {key!r} in its input tensordict, but "
                    f"it is missing; present keys: {sorted(map(str, td.keys(True, True)))}"
                )

    def _next_key(self, name: str) -> tuple:
        key = self._keys[name]
        return ("next", *key) if isinstance(key, tuple) else ("next", key)

    def _get(self, td: TensorDictBase, name: str) -> Tensor:
        key = self._keys[name]
        value = td.get(key, None)
        if value is None:
            raise KeyError(
                f"{type(self).__name__} needs the key {key!r} ({name}) in its input tensordict, "
                f"but it is missing; present keys: {sorted(map(str, td.keys(True, True)))}"
            )
        return value

    # ---------------------------------------------------------- coefficients
    def register_coeff_buffer(self, name: str, value: float | int | Tensor | None, *,
                              device: torch.device | str | None = None,
                              dtype: torch.dtype | None = None) -> None:
        """Hold the scalar coefficient ``value`` as buffer ``name`` (on ``device``; a Python
        number becomes a tensor of ``dtype``, by default the default float dtype), so it
        follows ``loss.to(...)`` and the state dict. ``None`` sets the attribute to ``None``.

        >>> loss = LossModule()
        >>> loss.register_coeff_buffer("entropy_coeff", 0.01)
        >>> loss.entropy_coeff
        tensor(0.0100)
        >>> loss.register_coeff_buffer("clip_value", None)
        >>> loss.clip_value is None
        True
        """
        if value is None:
            self._buffers.pop(name, None)
            self.__dict__[name] = None
            return
        if isinstance(value, bool) or not isinstance(value, (float, int, Tensor)):
            raise ValueError(f"{name} must be a float or a scalar tensor, got {value}.")
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise ValueError(
                    f"{name} must be a float or a scalar tensor, got a tensor of shape "
                    f"{tuple(value.shape)}"
                )
            tensor = value.detach().clone().to(device=device, dtype=dtype)
        else:
            tensor = torch.tensor(float(value), device=device,
                                  dtype=dtype or torch.get_default_dtype())
        self.__dict__.pop(name, None)
        self.register_buffer(name, tensor)

    def __setattr__(self, name: str, value: Any) -> None:
        # a number assigned to a schedulable coefficient updates the buffer in place
        if (name in type(self)._all_schedulable_buffers and isinstance(value, (int, float))
                and not isinstance(value, bool)):
            buffer = self.__dict__.get("_buffers", {}).get(name)
            if buffer is not None:
                with torch.no_grad():
                    buffer.fill_(value)
                return
        super().__setattr__(name, value)

    @property
    def functional(self) -> bool:
        """``False`` when a network was registered with ``functional=False`` (held as a
        plain submodule, ``loss.<name>_params`` is ``None``)."""
        return not self._stateful

    # -------------------------------------------------------------- networks
    def register_network(
        self,
        name: str,
        module: nn.Module,
        *,
        num_copies: int | None = None,
        create_target: bool = False,
        functional: bool = True,
    ) -> None:
        """Hold ``module``'s parameters as ``self.<name>_params``.

        With ``num_copies``, the parameters of ``num_copies`` copies are stacked (leading
        dim) for :meth:`vmap_network`. With ``create_target``, a detached copy is kept as
        ``self.target_<name>_params`` for the target updaters; without it,
        ``self.target_<name>_params`` is a detached view of the live parameters.

        With ``functional=False`` the module itself is held as the submodule
        ``self.<name>`` and called as it is (its parameters show up under ``<name>.``);
        ``self.<name>_params`` and ``self.target_<name>_params`` are ``None``, and
        :meth:`network_params` reads the module's own parameters. Copies and targets need
        parameters held apart from the module, so they require ``functional=True``.

        >>> loss = LossModule()
        >>> loss.register_network("critic", nn.Linear(2, 1), functional=False)
        >>> loss.critic_params is None, sorted(n for n, _ in loss.named_parameters())
        (True, ['critic.bias', 'critic.weight'])
        """
        if not isinstance(module, nn.Module):
            raise TypeError(f"{name} must be an nn.Module, found {type(module).__name__}")
        self._plans.pop(name, None)
        if num_copies is not None and (not isinstance(num_copies, int) or num_copies < 1):
            raise ValueError(f"num_copies must be a positive int, found {num_copies!r}")
        if not isinstance(functional, bool):
            raise TypeError(f"functional must be True or False, found {functional!r}")
        if not functional:
            if num_copies is not None or create_target:
                raise ValueError(
                    f"{type(self).__name__}: {name} with functional=False cannot have "
                    f"copies (num_copies={num_copies}) or target parameters "
                    f"(create_target={create_target}): both are parameters held apart from "
                    "the module; use functional=True"
                )
            self._stateful.add(name)
            self._templates[name] = module
            setattr(self, name, module)
            self.__dict__[f"{name}_params"] = None
            self.__dict__[f"target_{name}_params"] = None
            return
        if _has_uninitialized(module):
            # copies and targets need shapes: wait for the first input (see the class doc)
            self._lazy[name] = (module, num_copies, create_target)
            if self._lazy_hook is None:  # only lazy losses pay for a pre-forward hook
                self._lazy_hook = self.register_forward_pre_hook(_materialize_hook)
            setattr(self, f"{name}_params", TensorDict.from_module(module, as_module=True))
            self._templates[name] = module
            if create_target and name not in self._target_names:
                self._target_names.append(name)
            return
        self._lazy.pop(name, None)
        self._num_copies[name] = num_copies
        if num_copies is None:
            params = TensorDict.from_module(module, as_module=True)
        else:
            copies = [module]
            for _ in range(num_copies - 1):
                clone = copy.deepcopy(module)
                if not _reset_copy(clone):
                    warnings.warn(
                        f"{type(self).__name__}: no submodule of {name} has reset_parameters, "
                        f"so its {num_copies} copies start identical",
                        StreamRLWarning,
                        stacklevel=3,
                    )
                copies.append(clone)
            params = TensorDict.from_modules(*copies, as_module=True)
        # A parameter-less template: the live tensors are always swapped in at call time,
        # so the template neither duplicates parameters nor shows up in .parameters().
        # (copied, never swapped in place: the user's module may be running elsewhere)
        template = copy.deepcopy(module).to("meta")
        self._templates[name] = template
        setattr(self, f"{name}_params", params)
        if create_target:
            target = TensorDictParams(params.detach().clone(), no_convert=True)
            setattr(self, f"target_{name}_params", target)
            if name not in self._target_names:
                self._target_names.append(name)

    def convert_to_functional(
        self,
        module: nn.Module,
        module_name: str,
        expand_dim: int | None = None,
        create_target_params: bool = False,
        compare_against: Any = None,
    ) -> None:
        """TorchRL's name for :meth:`register_network`.

        ``expand_dim`` is ``num_copies`` (copy 0 keeps the module's weights, the others are
        re-initialised) and ``create_target_params`` is ``create_target``: the parameters
        live at ``loss.<module_name>_params`` and the targets at
        ``loss.target_<module_name>_params``.

        ``compare_against`` (an iterable of tensors, e.g. another network's parameters):
        the module's parameters found there are held as detached views of those tensors
        (expanded over the copies with ``expand_dim``), not as parameters of their own, so
        this network neither trains nor duplicates them and reads their current values.
        (Converting the loss's dtype or device gives them storage of their own.)

        >>> loss = LossModule()
        >>> loss.convert_to_functional(nn.Linear(2, 2), "value_network", create_target_params=True)
        >>> loss.target_value_network_params["weight"].shape
        torch.Size([2, 2])
        >>> trunk = nn.Linear(2, 2)
        >>> loss.convert_to_functional(trunk, "actor_network")
        >>> loss.convert_to_functional(nn.Sequential(trunk, nn.Linear(2, 1)), "critic",
        ...                            expand_dim=2, compare_against=trunk.parameters())
        >>> sorted(n for n, _ in loss.critic_params.named_parameters())
        ['1.bias', '1.weight']
        """
        self.register_network(module_name, module, num_copies=expand_dim,
                              create_target=create_target_params)
        if compare_against is not None:
            self._hold_shared_as_views(module_name, module, compare_against)

    def _hold_shared_as_views(self, name: str, module: nn.Module, others: Any) -> None:
        if name in self._lazy:
            raise ValueError(
                f"{type(self).__name__}: compare_against needs {name}'s parameters initialised "
                "(it has lazy layers); run it once before building the loss"
            )
        shared = {id(t) for t in others}
        params = getattr(self, f"{name}_params")
        held = TensorDict(batch_size=params.batch_size)
        originals = TensorDict.from_module(module)
        for key, value in params.items(True, True):
            own = originals.get(key)
            if id(own) in shared:
                value = own.detach()
                if self._num_copies.get(name) is not None:
                    value = value.expand(self._num_copies[name], *value.shape)
            held.set(key, value)
        # parameters stay parameters, the detached views become buffers
        setattr(self, f"{name}_params", TensorDictParams(held, no_convert=True))

    def materialize_lazy(self, tensordict: TensorDictBase) -> None:
        """Initialise the lazy networks by running them on ``tensordict`` (done on the first
        call; call it yourself to build an optimizer over every parameter before that)."""
        for name, (module, num_copies, create_target) in list(self._lazy.items()):
            with torch.no_grad():
                try:
                    module(tensordict.copy())
                except KeyError as err:
                    raise KeyError(
                        f"{type(self).__name__}: could not run the lazy network {name} to "
                        f"initialise it ({err.args[0]})"
                    ) from err
            if _has_uninitialized(module):
                raise ValueError(
                    f"{type(self).__name__}: {name} still has uninitialised parameters after a "
                    "call; initialise its lazy layers before building the loss"
                )
            self.register_network(name, module, num_copies=num_copies, create_target=create_target)
        if not self._lazy and self._lazy_hook is not None:
            self._lazy_hook.remove()
            self._lazy_hook = None

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            # a network registered without a target bootstraps from its live parameters:
            # target_<name>_params is then a detached view of them (TorchRL's convention)
            if name.startswith("target_") and name.endswith("_params"):
                network = name[len("target_"):-len("_params")]
                if network in self.__dict__.get("_templates", {}):
                    return self.network_params(network, detach=True)
            raise

    @property
    def target_network_names(self) -> tuple[str, ...]:
        """Names of the networks that have target parameters."""
        return tuple(self._target_names)

    def network_params(self, name: str, *, target: bool = False, detach: bool = False
                       ) -> TensorDictBase:
        """The parameters of network ``name`` (live, detached, or target)."""
        if target:
            return getattr(self, f"target_{name}_params")
        if name in self._stateful:
            # the module's own parameters: swapping them in (to_module) changes nothing
            params = TensorDict.from_module(self._templates[name])
        else:
            params = getattr(self, f"{name}_params")
        return params.detach() if detach else params

    def _plan(self, name: str) -> NetworkPlan | None:
        """Network ``name``'s :class:`NetworkPlan` (built once), or None when it has none or
        plans cannot run now (global hooks, ``skip_existing``)."""
        return calls.network_plan(self, name)

    def call_network(self, name: str, td: TensorDictBase,
                     params: TensorDictBase | None = None) -> TensorDictBase:
        """Run network ``name`` on ``td`` with ``params`` (default: the live parameters)."""
        return calls.call_network(self, name, td, params)

    def network_output(self, name: str, td: TensorDictBase, key_name: str,
                       params: TensorDictBase | None = None) -> Tensor:
        """The entry the loss calls ``key_name`` (e.g. ``"action_value"``, see
        ``set_keys``) that network ``name`` computes on ``td`` with ``params`` (default: the
        live parameters); ``td`` is left untouched. The same tensor as
        ``_get(call_network(name, td.copy(), params), key_name)``, without the copy and the
        writes where the network has a plan."""
        return calls.network_output(self, name, td, key_name, params)

    def network_dist(self, name: str, td: TensorDictBase,
                     params: TensorDictBase | None = None) -> torch.distributions.Distribution:
        """The distribution of a probabilistic network ``name`` on ``td`` (the parameters
        the network computes are written into ``td``, as ``get_dist`` does)."""
        return calls.network_dist(self, name, td, params)

    def vmap_network(self, name: str, td: TensorDictBase,
                     params: TensorDictBase | None = None) -> TensorDictBase:
        """Run every copy of ensemble ``name`` on the same ``td``; outputs get a leading dim."""
        return calls.vmap_network(self, name, td, params)

    def ensemble_output(self, name: str, td: TensorDictBase, key: NestedKey,
                        params: TensorDictBase | None = None, *,
                        overrides: dict[NestedKey, Tensor] | None = None) -> Tensor:
        """Entry ``key`` of every copy of ensemble ``name`` run on ``td`` (with the entries
        of ``overrides`` in place of ``td``'s), stacked on a leading copy dim; ``td`` is left
        untouched.

        A network with a plan (see :mod:`streamrl.objectives._network_plan`) runs its copies
        one after the other on tensors, whatever ``deactivate_vmap`` says: on CPU that is
        cheaper than :func:`torch.vmap` and gives the same values. Others go through
        :meth:`vmap_network`.
        """
        return calls.ensemble_output(self, name, td, key, params, overrides)

    def network_template(self, name: str) -> nn.Module:
        """The parameter-less module used to call network ``name``."""
        return self._templates[name]

    def network_in_keys(self, name: str) -> list[NestedKey]:
        """The keys network ``name`` reads (from its ``in_keys``, when it has them)."""
        return list(getattr(self._templates[name], "in_keys", []))

    def reset_parameters_recursive(self) -> None:
        """Re-initialise every network's parameters (each copy of an ensemble on its own)
        with its submodules' ``reset_parameters``, and copy them into the targets.

        >>> loss = LossModule()
        >>> loss.register_network("net", nn.Linear(2, 2), create_target=True)
        >>> _ = loss.net_params["weight"].data.fill_(100.0)
        >>> loss.reset_parameters_recursive()
        >>> bool((loss.net_params["weight"].abs() < 100).all())
        True
        >>> torch.equal(loss.net_params["weight"], loss.target_net_params["weight"])
        True
        """
        if self._lazy:
            raise RuntimeError(
                f"{type(self).__name__}: networks {sorted(self._lazy)} are still lazy; call "
                "the loss (or materialize_lazy) once before resetting their parameters"
            )
        for name, template in self._templates.items():
            params = self.network_params(name)
            copies = [params] if self._num_copies.get(name) is None else params.unbind(0)
            with torch.no_grad():
                for copy_params in copies:
                    with params_in(copy_params, template, preserve_module_state=False):
                        _reset_copy(template)
                if name in self._target_names:
                    getattr(self, f"target_{name}_params").update_(params.detach())

    # ------------------------------------------------------- keyword inputs
    def _kwarg_in_keys(self) -> list[NestedKey] | None:
        """The input keys a keyword call maps: the loss's ``in_keys`` when it lists them
        (``None``: the loss takes a tensordict only)."""
        return getattr(self, "in_keys", None)

    def _kwarg_batch_size(self, td: TensorDictBase) -> torch.Size:
        """The batch size of a tensordict built from keyword inputs: the leading dims every
        input shares."""
        return td.auto_batch_size_().batch_size

    # ------------------------------------------------------------ out keys
    _selected_out_keys: list[str] | None = None

    def _output_keys(self) -> list[str]:
        """The entries a keyword call returns, in order (the losses that take keyword
        inputs list them; extra diagnostics such as ``td_error`` may be left out)."""
        raise NotImplementedError(f"{type(self).__name__} does not list its outputs")

    @property
    def out_keys(self) -> list[str]:
        """The output entries a keyword call returns, in order (only those kept by
        :meth:`select_out_keys`, when called)."""
        if self._selected_out_keys is not None:
            return list(self._selected_out_keys)
        return self._output_keys()

    def select_out_keys(self, *keys: str) -> LossModule:
        """Keep only ``keys`` in the output (and in what a keyword call returns); returns
        ``self``. :meth:`reset_out_keys` restores every entry."""
        known = self._output_keys()
        unknown = [k for k in keys if k not in known]
        if unknown:
            raise ValueError(
                f"{type(self).__name__} does not write {unknown}; its outputs are {known}"
            )
        self._selected_out_keys = list(keys)
        return self

    def reset_out_keys(self) -> LossModule:
        """Undo :meth:`select_out_keys`; returns ``self``."""
        self._selected_out_keys = None
        return self

    def _check_updater(self) -> None:
        """TorchRL's reminder, once per loss: target parameters without a
        :class:`~streamrl.objectives.SoftUpdate` / :class:`~streamrl.objectives.HardUpdate`
        built on the loss never move unless updated by hand (``RL_WARNINGS=0`` silences it)."""
        if self._target_names and not self._has_update_associated and not self._warned_no_updater:
            self._warned_no_updater = True
            if rl_warnings():
                warnings.warn(
                    f"No target network updater has been associated with this loss module "
                    f"({type(self).__name__}), but target parameters have been found: they "
                    "stay as they are unless updated by hand. Build a SoftUpdate or HardUpdate "
                    "on the loss, or set RL_WARNINGS=0 to silence this warning.",
                    UserWarning,
                    stacklevel=3,
                )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._check_updater()
        if args or not kwargs or "tensordict" in kwargs:
            out = super().__call__(*args, **kwargs)
            if self._selected_out_keys is not None and isinstance(out, TensorDictBase):
                out = out.select(*self._selected_out_keys)
            return out
        keys = self._kwarg_in_keys()
        if keys is None:
            raise TypeError(
                f"{type(self).__name__} takes a tensordict, found keyword inputs {sorted(kwargs)}"
            )
        # TorchRL's convention: each input key, nested parts joined with "_", is a keyword
        names = {"_".join(k) if isinstance(k, tuple) else k: k for k in keys}
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword inputs {unknown}; it takes "
                f"{sorted(names)}"
            )
        td = TensorDict({names[k]: v for k, v in kwargs.items()}, batch_size=[])
        td.batch_size = self._kwarg_batch_size(td)
        out = super().__call__(td)
        values = tuple(out.get(key) for key in self.out_keys)  # (selected: all present)
        return values[0] if len(values) == 1 else values

    # ------------------------------------------------------- value estimator
    def _estimator_value_network(self) -> Callable[[TensorDictBase], Any] | None:
        """The callable an estimator uses to fill missing state values (none by default)."""
        return None

    def _estimator_actor_network(self) -> Any:
        """The policy (with ``get_dist``) a V-trace estimator evaluates (none by default)."""
        return None

    def _estimator_value_key(self) -> NestedKey:
        return "state_value"

    def make_value_estimator(
        self, value_type: ValueEstimators | str | type | ValueEstimatorBase | None = None,
        **hyperparams: Any,
    ) -> LossModule:
        """Build the value estimator; returns ``self``.

        ``value_type`` is a :class:`ValueEstimators` member (or its name; default: the loss's
        ``default_value_estimator``; one the loss does not support raises
        ``NotImplementedError``, as in TorchRL), with ``hyperparams`` completing
        :func:`~streamrl.objectives.utils.default_value_kwargs`; or a
        :class:`~streamrl.objectives.value.ValueEstimatorBase` subclass, built with
        ``hyperparams`` (and the loss's value network unless one is given); or an estimator
        instance, used as it is. In every case the loss's keys are applied to it.

        >>> from streamrl.modules import QValueActor
        >>> from streamrl.objectives import DQNLoss
        >>> loss = DQNLoss(QValueActor(nn.Linear(4, 2), action_space="one_hot"))
        >>> loss.make_value_estimator(ValueEstimators.TD0, gamma=0.9).value_estimator.gamma
        0.9
        """
        if isinstance(value_type, ValueEstimatorBase):
            estimator = value_type
            self.value_type = type(value_type)
            if hyperparams:
                raise ValueError(
                    "make_value_estimator got an estimator instance and hyperparameters "
                    f"{sorted(hyperparams)}; set them on the instance instead"
                )
        elif isinstance(value_type, type):
            if not issubclass(value_type, ValueEstimatorBase):
                raise TypeError(
                    f"value_type must be a ValueEstimatorBase subclass, found {value_type.__name__}"
                )
            hyperparams.setdefault("value_network", self._estimator_value_network())
            estimator = value_type(**hyperparams)
            self.value_type = value_type
        else:
            if value_type is None:
                value_type = self.default_value_estimator
            if value_type is None:
                raise NotImplementedError(f"{type(self).__name__} does not use a value estimator")
            if isinstance(value_type, str):
                value_type = _parse_value_type(value_type)
            if value_type not in self.supported_value_estimators:
                raise NotImplementedError(
                    f"{type(self).__name__} supports value estimators "
                    f"{[v.name for v in self.supported_value_estimators]}, found {value_type!r}"
                )
            hyperparams = {**default_value_kwargs(value_type), **hyperparams}
            if value_type is ValueEstimators.VTrace:
                hyperparams.setdefault("actor_network", self._estimator_actor_network())
                if hyperparams["actor_network"] is None:
                    raise NotImplementedError(
                        f"{type(self).__name__}: VTrace needs the policy being trained as "
                        "actor_network, and this loss has no probabilistic actor; pass "
                        "actor_network=... or use another estimator"
                    )
            estimator = make_estimator(
                value_type, value_network=self._estimator_value_network(), **hyperparams
            )
            self.value_type = value_type
        estimator.set_keys(value=self._estimator_value_key())
        self._value_estimator = estimator
        self._sync_estimator_keys()
        return self

    @property
    def value_estimator(self) -> ValueEstimatorBase:
        """The value estimator (the default one is built on first use)."""
        if self._value_estimator is None:
            self.make_value_estimator()
        return self._value_estimator

    def reset(self) -> None:
        """Return the state the loss adapts during training to its initial value (nothing by
        default; :class:`~streamrl.objectives.KLPENPPOLoss` restores its ``beta``). The
        networks' parameters are left alone (see :meth:`reset_parameters_recursive`)."""

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the losses; subclasses implement it."""
        raise NotImplementedError


def _materialize_hook(loss: LossModule, args: tuple) -> None:
    if loss._lazy and args and isinstance(args[0], TensorDictBase):
        loss.materialize_lazy(args[0])


def _parse_value_type(name: str) -> ValueEstimators:
    for member in ValueEstimators:
        if name in (member.name, member.value):
            return member
    raise ValueError(
        f"unknown value estimator {name!r}; expected one of {[v.name for v in ValueEstimators]}"
    )


def _output(**entries: Tensor) -> TensorDict:
    """A batch-less TensorDict of loss entries."""
    return TensorDict(entries, batch_size=[])
