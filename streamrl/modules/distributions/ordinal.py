"""Ordinal distributions over a finite ordered set (Tang & Agrawal, 2020, section 5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from streamrl.modules.distributions.categorical import Categorical, OneHotCategorical

__all__ = ["OneHotOrdinal", "Ordinal", "ordinal_logits"]


def ordinal_logits(scores: torch.Tensor) -> torch.Tensor:
    """The normalised log-probabilities of the ordinal parametrisation of ``scores``
    ``[..., N]``: ``logit_k = sum_{i <= k} log sigmoid(s_i) + sum_{i > k} log sigmoid(-s_i)``.

    Neighbouring atoms share all but one term, so the probabilities vary smoothly along the
    order (what a plain softmax does not encode).

    >>> ordinal_logits(torch.zeros(3)).exp()
    tensor([0.3333, 0.3333, 0.3333])
    """
    if not isinstance(scores, torch.Tensor) or scores.ndim < 1 or scores.shape[-1] < 1:
        raise ValueError(
            "scores must be a tensor of shape [..., N] with N >= 1, found "
            f"{getattr(scores, 'shape', type(scores).__name__)}"
        )
    up = F.logsigmoid(scores).cumsum(-1)
    # suffix sums of log sigmoid(-s) over i > k
    down = F.logsigmoid(-scores).flip(-1).cumsum(-1).flip(-1)
    down = torch.cat([down[..., 1:], torch.zeros_like(down[..., :1])], -1)
    return (up + down).log_softmax(-1)


class Ordinal(Categorical):
    """A categorical distribution over ``N`` ordered atoms, parametrised by ``scores``
    ``[..., N]`` through :func:`ordinal_logits`: close atoms get close probabilities, which
    suits discretised continuous actions. Samples are indices in ``[0, N)``.

    >>> dist = Ordinal(scores=torch.tensor([0.5, -1.0, 2.0]))
    >>> dist.probs
    tensor([0.2447, 0.0900, 0.6652])
    >>> dist.sample((4,)).shape
    torch.Size([4])
    """

    def __init__(self, scores: torch.Tensor) -> None:
        super().__init__(logits=ordinal_logits(scores))


class OneHotOrdinal(OneHotCategorical):
    """The one-hot version of :class:`Ordinal`: samples are one-hot vectors ``[..., N]``.

    >>> dist = OneHotOrdinal(scores=torch.tensor([0.5, -1.0, 2.0]))
    >>> dist.mode
    tensor([0., 0., 1.])
    """

    def __init__(self, scores: torch.Tensor) -> None:
        super().__init__(logits=ordinal_logits(scores))
