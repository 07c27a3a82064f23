"""Functional value estimators: TD(0), TD(1), TD(lambda) returns and GAE.

All functions take tensors that share one shape ``[*batch, time, *feature]`` (reward, done
flags and values alike, the seed's layout has a trailing feature dim of 1) and a ``time_dim``
(default ``-2``). A time axis may hold several trajectories back to back: ``done`` cuts the
recursion between them. Bootstrapping follows the flags:

- ``terminated``: the episode ended in a terminal state, so the next value counts for 0;
- ``done`` without ``terminated`` (truncation, a time limit): the next value still counts,
  but the return does not flow across the boundary into the next trajectory;
- the last step of the time axis is treated as a truncation (bootstrap from the next value).

When ``terminated`` is not given it defaults to ``done`` (every end is terminal), which is the
right reading of data that only carries a ``done`` flag.

No Python loop runs per time step: the backward recursions ``z[t] = a[t] + c[t] * z[t+1]`` are
solved with a log-depth parallel scan (:func:`reverse_linear_scan`), about ``log2(T)`` vector
operations over the whole ``[batch, time]`` block.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "generalized_advantage_estimate",
    "reverse_linear_scan",
    "td0_advantage_estimate",
    "td0_return_estimate",
    "td1_advantage_estimate",
    "td1_return_estimate",
    "td_lambda_advantage_estimate",
    "td_lambda_return_estimate",
    "vec_generalized_advantage_estimate",
    "vec_td1_advantage_estimate",
    "vec_td1_return_estimate",
    "vec_td_lambda_advantage_estimate",
    "vec_td_lambda_return_estimate",
    "vtrace_advantage_estimate",
]


def _as_float_mask(flag: Tensor, like: Tensor) -> Tensor:
    return flag.to(like.dtype)


def _check_shapes(named: dict[str, Tensor | None]) -> torch.Size:
    shape = None
    first = None
    for name, tensor in named.items():
        if tensor is None:
            continue
        if not isinstance(tensor, Tensor):
            raise TypeError(f"expected {name} to be a torch.Tensor, found {type(tensor).__name__}")
        if shape is None:
            shape, first = tensor.shape, name
        elif tensor.shape != shape:
            raise ValueError(
                f"shape mismatch: {first} has shape {tuple(shape)} but {name} has shape "
                f"{tuple(tensor.shape)}; reward, done flags and values must have the same shape "
                "(no implicit broadcasting)"
            )
    if shape is None or len(shape) == 0:
        raise ValueError("expected tensors with at least one (time) dimension, found scalars")
    return shape


def _check_coef(name: str, value: float | Tensor, shape: torch.Size) -> None:
    if isinstance(value, Tensor):
        if value.numel() != 1 and value.shape != shape:
            raise ValueError(
                f"{name} must be a float, a one-element tensor or a tensor of shape "
                f"{tuple(shape)}; found shape {tuple(value.shape)}"
            )
    elif not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float or a tensor, found {type(value).__name__}")


def reverse_linear_scan(a: Tensor, c: Tensor, dim: int = -1) -> Tensor:
    """Solve ``z[t] = a[t] + c[t] * z[t + 1]`` backwards along ``dim`` (with ``z[T] = 0``).

    Uses a Hillis-Steele parallel scan: ``ceil(log2(T))`` rounds, each a handful of vector
    operations over the whole tensor, instead of ``T`` sequential steps. Only products of
    the coefficients are formed (never divisions), so zeros in ``c`` (trajectory ends) and
    long horizons are numerically safe.

    >>> a = torch.tensor([1.0, 1.0, 1.0]); c = torch.tensor([0.5, 0.5, 0.5])
    >>> reverse_linear_scan(a, c)
    tensor([1.7500, 1.5000, 1.0000])
    """
    if a.shape != c.shape:
        raise ValueError(
            f"a and c must have the same shape, found {tuple(a.shape)} and {tuple(c.shape)}"
        )
    if a.ndim == 0:
        raise ValueError("reverse_linear_scan needs at least one dimension")
    a = a.movedim(dim, -1)
    c = c.movedim(dim, -1)
    if (a.requires_grad or c.requires_grad) and torch.is_grad_enabled():
        return _scan_autograd(a, c).movedim(-1, dim)
    steps = a.shape[-1]
    # Work on fresh contiguous buffers and swap them every round: each round reads the
    # previous round's values only, so no in-place aliasing.
    a_cur = a.contiguous().clone()
    c_cur = c.contiguous().clone()
    a_next = torch.empty_like(a_cur)
    c_next = torch.empty_like(c_cur)
    shift = 1
    while shift < steps:
        keep = steps - shift
        torch.addcmul(a_cur[..., :keep], c_cur[..., :keep], a_cur[..., shift:], out=a_next[..., :keep])
        a_next[..., keep:] = a_cur[..., keep:]
        if shift * 2 < steps:  # the coefficients are not needed after the last round
            torch.mul(c_cur[..., :keep], c_cur[..., shift:], out=c_next[..., :keep])
            c_next[..., keep:] = 0.0
            c_cur, c_next = c_next, c_cur
        a_cur, a_next = a_next, a_cur
        shift *= 2
    return a_cur.movedim(-1, dim)


def _scan_autograd(a: Tensor, c: Tensor) -> Tensor:
    """The same scan with out-of-place ops, so gradients flow (``out=`` does not record)."""
    steps = a.shape[-1]
    shift = 1
    while shift < steps:
        keep = steps - shift
        a = torch.cat([a[..., :keep] + c[..., :keep] * a[..., shift:], a[..., keep:]], -1)
        c = torch.cat([c[..., :keep] * c[..., shift:], torch.zeros_like(c[..., keep:])], -1)
        shift *= 2
    return a


def td0_return_estimate(
    gamma: float | Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    terminated: Tensor | None = None,
    *,
    done: Tensor | None = None,
) -> Tensor:
    """One-step TD target ``r + gamma * (1 - terminated) * V(s')``.

    ``terminated`` defaults to ``done`` when omitted (see the module docstring). No time
    structure is used, so any shape works as long as all inputs share it.

    >>> td0_return_estimate(0.5, torch.ones(2, 1), torch.ones(2, 1),
    ...                     torch.tensor([[False], [True]]))
    tensor([[1.5000],
            [1.0000]])
    """
    if terminated is None:
        terminated = done
    if terminated is None:
        raise ValueError("td0_return_estimate needs terminated (or done)")
    _check_shapes({"reward": reward, "next_state_value": next_state_value,
                   "terminated": terminated, "done": done})
    _check_coef("gamma", gamma, reward.shape)
    not_term = 1.0 - _as_float_mask(terminated, reward)
    return reward + gamma * not_term * next_state_value


def td0_advantage_estimate(
    gamma: float | Tensor,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor | None = None,
    terminated: Tensor | None = None,
) -> Tensor:
    """One-step TD error ``r + gamma * (1 - terminated) * V(s') - V(s)`` (TorchRL's argument
    order: ``done`` then ``terminated``, which defaults to ``done``)."""
    _check_shapes({"state_value": state_value, "reward": reward})
    return td0_return_estimate(gamma, next_state_value, reward, terminated, done=done) - state_value


def _check_rolling_gamma(rolling_gamma: bool | None, gamma: float | Tensor) -> None:
    """TorchRL's ``rolling_gamma``: ``None``/``True`` tie each step's gamma to that step (the
    recursion ``G[t] = r[t] + gamma[t] * ...``, the only one implemented); ``False`` changes
    nothing for a scalar gamma and is refused for a gamma that varies over time."""
    if rolling_gamma not in (None, True, False):
        raise TypeError(f"rolling_gamma must be a bool or None, found {rolling_gamma!r}")
    if rolling_gamma is False and isinstance(gamma, Tensor) and gamma.numel() > 1:
        raise NotImplementedError(
            "rolling_gamma=False with a gamma that varies over time is not supported: "
            "streamrl ties each step's gamma to that step (rolling_gamma=True)"
        )


def td_lambda_return_estimate(
    gamma: float | Tensor,
    lmbda: float | Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    rolling_gamma: bool | None = None,
    *,
    time_dim: int = -2,
) -> Tensor:
    """TD(lambda) return over a time axis, with trajectory ends cutting the recursion.

    ``G[t] = r[t] + gamma * (1 - term[t]) * ((1 - lmbda) * V(s'[t]) + lmbda * G[t+1])`` inside a
    trajectory; at a ``done`` step (or the last step of the axis), ``G[t]`` is the one-step
    target ``r[t] + gamma * (1 - term[t]) * V(s'[t])``. Only next-state values are needed.

    Written as ``G = y + D`` with ``y`` the TD(0) target, ``D`` solves the linear recursion
    ``D[t] = gamma * lmbda * (1 - done[t]) * (y[t+1] - V(s'[t]) + D[t+1])``.
    ``rolling_gamma``: see :func:`_check_rolling_gamma`.
    """
    _check_rolling_gamma(rolling_gamma, gamma)
    if terminated is None:
        terminated = done
    shape = _check_shapes({"reward": reward, "next_state_value": next_state_value,
                           "done": done, "terminated": terminated})
    _check_coef("gamma", gamma, shape)
    _check_coef("lmbda", lmbda, shape)
    time_dim = _norm_dim(time_dim, len(shape))
    y = td0_return_estimate(gamma, next_state_value, reward, terminated)
    coef = gamma * lmbda * (1.0 - _as_float_mask(done, reward))
    if not isinstance(coef, Tensor) or coef.shape != shape:
        coef = torch.as_tensor(coef, dtype=reward.dtype, device=reward.device).expand(shape)
    y_next = _shift_back(y, time_dim)
    # at the last step y_next is 0 and coef is irrelevant: the recursion stops there anyway
    a = coef * (y_next - next_state_value)
    last = _last_step_mask(shape, time_dim, reward.device)
    a = a.masked_fill(last, 0.0)
    c = coef.masked_fill(last, 0.0)
    return y + reverse_linear_scan(a, c, time_dim)


def td1_return_estimate(
    gamma: float | Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    rolling_gamma: bool | None = None,
    *,
    time_dim: int = -2,
) -> Tensor:
    """Discounted return to the end of each trajectory (TD(lambda) with ``lmbda=1``).

    Bootstraps from ``V(s')`` only where a trajectory is cut without terminating (truncation,
    or the end of the time axis).
    """
    return td_lambda_return_estimate(
        gamma, 1.0, next_state_value, reward, done, terminated, rolling_gamma, time_dim=time_dim
    )


def td_lambda_advantage_estimate(
    gamma: float | Tensor,
    lmbda: float | Tensor,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    rolling_gamma: bool | None = None,
    time_dim: int = -2,
) -> Tensor:
    """TD(lambda) advantage: :func:`td_lambda_return_estimate` minus ``V(s)``.

    >>> ones = torch.ones(3, 1)
    >>> td_lambda_advantage_estimate(0.5, 1.0, torch.zeros(3, 1), 0 * ones, ones,
    ...                              torch.zeros(3, 1, dtype=torch.bool)).squeeze(-1)
    tensor([1.7500, 1.5000, 1.0000])
    """
    _check_shapes({"state_value": state_value, "reward": reward})
    return td_lambda_return_estimate(
        gamma, lmbda, next_state_value, reward, done, terminated, rolling_gamma, time_dim=time_dim
    ) - state_value


def td1_advantage_estimate(
    gamma: float | Tensor,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    rolling_gamma: bool | None = None,
    time_dim: int = -2,
) -> Tensor:
    """TD(1) advantage: :func:`td1_return_estimate` minus ``V(s)``."""
    return td_lambda_advantage_estimate(gamma, 1.0, state_value, next_state_value, reward, done,
                                        terminated, rolling_gamma, time_dim)


# TorchRL's vectorized variants: streamrl's estimates are vectorized (one reverse linear
# scan over time), so each is the function above under TorchRL's name and signature.
def vec_generalized_advantage_estimate(
    gamma: float | Tensor, lmbda: float | Tensor, state_value: Tensor, next_state_value: Tensor,
    reward: Tensor, done: Tensor, terminated: Tensor | None = None, *, time_dim: int = -2,
) -> tuple[Tensor, Tensor]:
    """:func:`generalized_advantage_estimate` (TorchRL's vectorized name)."""
    return generalized_advantage_estimate(gamma, lmbda, state_value, next_state_value, reward,
                                          done, terminated, time_dim=time_dim)


def vec_td_lambda_return_estimate(
    gamma: float | Tensor, lmbda: float | Tensor, next_state_value: Tensor, reward: Tensor,
    done: Tensor, terminated: Tensor | None = None, rolling_gamma: bool | None = None, *,
    time_dim: int = -2,
) -> Tensor:
    """:func:`td_lambda_return_estimate` (TorchRL's vectorized name)."""
    return td_lambda_return_estimate(gamma, lmbda, next_state_value, reward, done, terminated,
                                     rolling_gamma, time_dim=time_dim)


def vec_td_lambda_advantage_estimate(
    gamma: float | Tensor, lmbda: float | Tensor, state_value: Tensor, next_state_value: Tensor,
    reward: Tensor, done: Tensor, terminated: Tensor | None = None,
    rolling_gamma: bool | None = None, time_dim: int = -2,
) -> Tensor:
    """:func:`td_lambda_advantage_estimate` (TorchRL's vectorized name)."""
    return td_lambda_advantage_estimate(gamma, lmbda, state_value, next_state_value, reward,
                                        done, terminated, rolling_gamma, time_dim)


def vec_td1_return_estimate(
    gamma: float | Tensor, next_state_value: Tensor, reward: Tensor, done: Tensor,
    terminated: Tensor | None = None, rolling_gamma: bool | None = None, time_dim: int = -2,
) -> Tensor:
    """:func:`td1_return_estimate` (TorchRL's vectorized name)."""
    return td1_return_estimate(gamma, next_state_value, reward, done, terminated, rolling_gamma,
                               time_dim=time_dim)


def vec_td1_advantage_estimate(
    gamma: float | Tensor, state_value: Tensor, next_state_value: Tensor, reward: Tensor,
    done: Tensor, terminated: Tensor | None = None, rolling_gamma: bool | None = None,
    time_dim: int = -2,
) -> Tensor:
    """:func:`td1_advantage_estimate` (TorchRL's vectorized name)."""
    return td1_advantage_estimate(gamma, state_value, next_state_value, reward, done, terminated,
                                  rolling_gamma, time_dim)


def generalized_advantage_estimate(
    gamma: float | Tensor,
    lmbda: float | Tensor,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    *,
    time_dim: int = -2,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimate (Schulman et al. 2016); returns ``(advantage, value_target)``.

    ``delta[t] = r[t] + gamma * (1 - term[t]) * V(s'[t]) - V(s[t])`` and
    ``A[t] = delta[t] + gamma * lmbda * (1 - done[t]) * A[t+1]``; ``value_target = A + V(s)``.

    >>> adv, target = generalized_advantage_estimate(
    ...     0.5, 1.0, torch.zeros(3, 1), torch.zeros(3, 1), torch.ones(3, 1),
    ...     torch.zeros(3, 1, dtype=torch.bool))
    >>> adv.squeeze(-1)
    tensor([1.7500, 1.5000, 1.0000])
    """
    if terminated is None:
        terminated = done
    shape = _check_shapes({"reward": reward, "state_value": state_value,
                           "next_state_value": next_state_value, "done": done,
                           "terminated": terminated})
    _check_coef("gamma", gamma, shape)
    _check_coef("lmbda", lmbda, shape)
    time_dim = _norm_dim(time_dim, len(shape))
    not_term = 1.0 - _as_float_mask(terminated, reward)
    delta = reward + gamma * not_term * next_state_value - state_value
    coef = gamma * lmbda * (1.0 - _as_float_mask(done, reward))
    if not isinstance(coef, Tensor) or coef.shape != shape:
        coef = torch.as_tensor(coef, dtype=reward.dtype, device=reward.device).expand(shape)
    advantage = reverse_linear_scan(delta, coef, time_dim)
    return advantage, advantage + state_value


def _norm_dim(dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise ValueError(f"time_dim={dim} is out of range for tensors with {ndim} dims")
    return dim % ndim


def _shift_back(x: Tensor, dim: int) -> Tensor:
    """``out[t] = x[t + 1]`` along ``dim``, zero at the last step."""
    out = torch.zeros_like(x)
    steps = x.shape[dim]
    if steps > 1:
        out.narrow(dim, 0, steps - 1).copy_(x.narrow(dim, 1, steps - 1))
    return out


def _last_step_mask(shape: torch.Size, dim: int, device: torch.device) -> Tensor:
    view = [1] * len(shape)
    view[dim] = shape[dim]
    mask = torch.zeros(shape[dim], dtype=torch.bool, device=device)
    mask[-1] = True
    return mask.view(view).expand(shape)


def vtrace_advantage_estimate(
    gamma: float | Tensor,
    log_pi: Tensor,
    log_mu: Tensor,
    state_value: Tensor,
    next_state_value: Tensor,
    reward: Tensor,
    done: Tensor,
    terminated: Tensor | None = None,
    rho_thresh: float | Tensor = 1.0,
    c_thresh: float | Tensor = 1.0,
    time_dim: int = -2,
) -> tuple[Tensor, Tensor]:
    """V-trace targets (Espeholt et al. 2018); returns ``(advantage, value_target)``.

    ``log_pi`` is the log-probability of each action under the policy being trained,
    ``log_mu`` under the policy that collected it; ``rho = min(rho_thresh, pi/mu)`` and
    ``c = min(c_thresh, pi/mu)``. With ``delta[t] = rho[t] * (r[t] + gamma * (1 - term[t]) *
    V(s'[t]) - V(s[t]))``, ``v[t] - V(s[t]) = delta[t] + gamma * c[t] * (1 - done[t]) *
    (v[t+1] - V(s[t+1]))`` (the ``value_target`` ``v``) and ``advantage[t] = rho[t] * (r[t] +
    gamma * (1 - term[t]) * v'[t] - V(s[t]))``, ``v'[t]`` being ``v[t+1]`` inside a trajectory
    and ``V(s'[t])`` where it ends or at the end of the time axis. On-policy
    (``log_pi == log_mu``, thresholds >= 1) ``v`` is the TD(1) return.

    >>> adv, target = vtrace_advantage_estimate(
    ...     0.5, torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(3, 1),
    ...     torch.ones(3, 1), torch.zeros(3, 1, dtype=torch.bool))
    >>> target.squeeze(-1)
    tensor([1.7500, 1.5000, 1.0000])
    """
    if terminated is None:
        terminated = done
    shape = _check_shapes({"reward": reward, "state_value": state_value,
                           "next_state_value": next_state_value, "done": done,
                           "terminated": terminated, "log_pi": log_pi, "log_mu": log_mu})
    _check_coef("gamma", gamma, shape)
    for name, thresh in (("rho_thresh", rho_thresh), ("c_thresh", c_thresh)):
        if not isinstance(thresh, Tensor) and not float(thresh) > 0:
            raise ValueError(f"{name} must be > 0, found {thresh}")
    time_dim = _norm_dim(time_dim, len(shape))
    ratio = (log_pi - log_mu).exp()
    rho = ratio.clamp(max=rho_thresh) if not isinstance(rho_thresh, Tensor) else \
        torch.minimum(ratio, rho_thresh)
    c = ratio.clamp(max=c_thresh) if not isinstance(c_thresh, Tensor) else \
        torch.minimum(ratio, c_thresh)
    not_term = 1.0 - _as_float_mask(terminated, reward)
    not_done = 1.0 - _as_float_mask(done, reward)
    delta = rho * (reward + gamma * not_term * next_state_value - state_value)
    correction = reverse_linear_scan(delta, gamma * c * not_done, time_dim)
    target = state_value + correction
    cut = done.bool() | _last_step_mask(shape, time_dim, reward.device)
    next_target = torch.where(cut, next_state_value, _shift_back(target, time_dim))
    advantage = rho * (reward + gamma * not_term * next_target - state_value)
    return advantage, target
