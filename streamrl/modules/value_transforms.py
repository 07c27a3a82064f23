"""Invertible element-wise value transforms: a critic predicts ``transform(return)`` and
``transform.inverse(prediction)`` brings it back to the reward scale for bootstrapping."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = [
    "ComposeValueTransform",
    "IdentityValueTransform",
    "SignedHyperbolicValueTransform",
    "SymLogValueTransform",
    "ValueTransform",
]


class ValueTransform(nn.Module):
    """Base of the value transforms: ``forward(value)`` maps raw values to the prediction
    space, :meth:`inverse` maps back; both element-wise.

    >>> import torch
    >>> class Double(ValueTransform):
    ...     def forward(self, value): return value * 2
    ...     def inverse(self, value): return value / 2
    >>> Double().inverse(Double()(torch.tensor([1.0, -3.0])))
    tensor([ 1., -3.])
    """

    def forward(self, value: Tensor) -> Tensor:
        """Raw value -> prediction space."""
        raise NotImplementedError

    def inverse(self, value: Tensor) -> Tensor:
        """Prediction space -> raw value."""
        raise NotImplementedError


class IdentityValueTransform(ValueTransform):
    """Values unchanged both ways.

    >>> import torch
    >>> IdentityValueTransform().inverse(torch.tensor([-1.0, 2.0]))
    tensor([-1.,  2.])
    """

    def forward(self, value: Tensor) -> Tensor:
        """``value``."""
        return value

    def inverse(self, value: Tensor) -> Tensor:
        """``value``."""
        return value


class SignedHyperbolicValueTransform(ValueTransform):
    """``h(x) = sign(x) * (sqrt(|x| + 1) - 1) + epsilon * x`` (Pohlen et al. 2018), which
    compresses large returns; :meth:`inverse` is its exact closed-form inverse.

    Args:
        epsilon: the linear term, > 0 (default ``1e-3``), which keeps the inverse Lipschitz.

    >>> import torch
    >>> transform = SignedHyperbolicValueTransform(epsilon=1e-3)
    >>> transform(torch.tensor([-100.0, 0.0, 100.0]))
    tensor([-9.1499,  0.0000,  9.1499])
    >>> transform.inverse(transform(torch.tensor([-100.0, 0.0, 100.0])))
    tensor([-100.0000,    0.0000,  100.0000])
    """

    def __init__(self, epsilon: float = 1e-3) -> None:
        super().__init__()
        if not (isinstance(epsilon, (int, float)) and epsilon > 0):
            raise ValueError(f"epsilon must be > 0, found {epsilon!r}")
        self.epsilon = float(epsilon)

    def forward(self, value: Tensor) -> Tensor:
        """``sign(x) * (sqrt(|x| + 1) - 1) + epsilon * x``."""
        return value.sign() * ((value.abs() + 1).sqrt() - 1) + self.epsilon * value

    def inverse(self, value: Tensor) -> Tensor:
        """The inverse: solve the quadratic in ``sqrt(|x| + 1)``."""
        eps = self.epsilon
        # sqrt(|x| + 1) = (sqrt(1 + 4 eps (|h| + 1 + eps)) - 1) / (2 eps), written without
        # the cancellation of "sqrt(1 + small) - 1"
        c = value.abs() + 1 + eps
        root = 2 * c / ((1 + 4 * eps * c).sqrt() + 1)
        return value.sign() * (root.pow(2) - 1) + 0.0  # + 0.0 turns -0.0 into 0.0

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}"


class SymLogValueTransform(ValueTransform):
    """``symlog(x) = sign(x) * log(1 + |x|)`` (DreamerV3), inverse ``sign(x) * (exp(|x|) - 1)``.

    >>> import torch
    >>> transform = SymLogValueTransform()
    >>> transform.inverse(transform(torch.tensor([-100.0, 0.0, 100.0])))
    tensor([-100.0000,    0.0000,  100.0000])
    """

    def forward(self, value: Tensor) -> Tensor:
        """``sign(x) * log(1 + |x|)``."""
        return value.sign() * value.abs().log1p()

    def inverse(self, value: Tensor) -> Tensor:
        """``sign(x) * (exp(|x|) - 1)``."""
        return value.sign() * value.abs().expm1()


class ComposeValueTransform(ValueTransform):
    """Apply ``transforms`` in order; :meth:`inverse` undoes them in reverse order.

    >>> import torch
    >>> transform = ComposeValueTransform(SignedHyperbolicValueTransform(), SymLogValueTransform())
    >>> transform(torch.tensor([-100.0, 0.0, 100.0]))
    tensor([-2.3175,  0.0000,  2.3175])
    >>> transform.inverse(transform(torch.tensor([-100.0, 0.0, 100.0])))
    tensor([-100.0000,    0.0000,  100.0000])
    """

    def __init__(self, *transforms: ValueTransform) -> None:
        super().__init__()
        if not transforms:
            raise ValueError("ComposeValueTransform needs at least one transform, found none")
        for transform in transforms:
            if not isinstance(transform, ValueTransform):
                raise TypeError(
                    "ComposeValueTransform expects ValueTransform instances, found "
                    f"{type(transform).__name__}"
                )
        self.transforms = nn.ModuleList(transforms)

    def forward(self, value: Tensor) -> Tensor:
        """Each transform in order."""
        for transform in self.transforms:
            value = transform(value)
        return value

    def inverse(self, value: Tensor) -> Tensor:
        """Each inverse in reverse order."""
        for transform in reversed(self.transforms):
            value = transform.inverse(value)
        return value
