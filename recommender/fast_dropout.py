"""Dropout with a cheap random mask on the CPU.

``torch.nn.functional.dropout`` on a CPU draws its mask with ``bernoulli_`` from the serial
Mersenne-Twister generator: about 15 ns per element on the development machine, which made dropout
the single largest cost of a training step after the matrix products (the T5 recommender applies
it to every sub-layer output, every feed-forward hidden state and every attention matrix). Here
the mask comes from numpy's SFC64 generator, 64 random bits per draw cut into four 16-bit lanes,
kept where ``lane >= round(p * 65536)``: the same Bernoulli(1 - p) mask up to a 2^-16 rounding of
p, about 10x cheaper. On other devices the standard dropout is used (GPU generators are fast).

Each mask is seeded by one draw from torch's global generator, so training stays a pure function
of ``torch.manual_seed`` and resumes exactly from a checkpoint that restores torch's RNG state
(accelerate's ``save_state`` does).

:func:`use_fast_dropout` swaps every ``nn.Dropout`` of a model for :class:`FastDropout` and points
attention at :func:`attention_with_fast_dropout` (T5's eager attention, the dropout on the
attention weights included). Weights and outputs in eval mode are unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_NAME = "genrec_fast_dropout"
_LANES = 65536  # 16-bit lanes


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """Boolean mask of ``shape``, True with probability 1 - p (p rounded to a multiple of 2^-16)."""
    count = int(np.prod(shape))
    seed = int(torch.randint(0, 2**62, (1,)).item())
    bits = np.random.SFC64(seed).random_raw((count + 3) // 4).view(np.uint16)[:count]
    return torch.from_numpy(bits >= round(p * _LANES)).view(shape)


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Drop-in for ``F.dropout`` (kept values scaled by 1 / (1 - p))."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training)
    scale = torch.from_numpy(np.multiply(keep_mask(x.shape, p).numpy(), 1.0 / (1.0 - p), dtype=np.float32))
    return x * scale.to(x.dtype)


class FastDropout(nn.Module):
    """``nn.Dropout`` with the mask of :func:`fast_dropout`."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attention_with_fast_dropout(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                                position_bias=None, **kwargs):
    """T5's eager attention (scores + position bias + mask, softmax, dropout, weighted values)
    with :func:`fast_dropout` on the attention weights."""
    scores = torch.matmul(query, key.transpose(2, 3))
    if scaling is not None and scaling != 1.0:
        scores = scores * scaling
    if position_bias is not None:
        scores = scores + position_bias
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = fast_dropout(scores.softmax(dim=-1), dropout, module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def use_fast_dropout(model: nn.Module) -> nn.Module:
    """Swap every ``nn.Dropout`` in ``model`` for :class:`FastDropout`, attention included (in place)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, FastDropout(child.p))
    AttentionInterface.register(ATTENTION_NAME, attention_with_fast_dropout)
    # Masks as eager attention takes them (additive float); without this entry none would be passed.
    AttentionMaskInterface.register(ATTENTION_NAME, ALL_MASK_ATTENTION_FUNCTIONS["eager"])
    model.set_attn_implementation(ATTENTION_NAME)
    return model
