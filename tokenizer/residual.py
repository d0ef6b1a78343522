"""Residual quantization, written once (in the spirit of vector-quantize-pytorch's ResidualVQ).

Level l quantizes what levels 1..l-1 left over: e^0 = x, (q_l, code_l, aux_l) = rule(l, e^(l-1)),
e^l = e^(l-1) - q_l (R3-VAE eq 6; RQ-VAE; residual K-Means). The per-level *rule* is what differs
between methods:

* R3-VAE: the soft rating of eqs 3-5 (``R3VAE.rate``); gradients flow through every e^l;
* RQ-VAE: nearest codeword with a straight-through estimator, the residual detached
  (``detach_residual=True``);
* encoding RQ-VAE / residual K-Means codes: the exact nearest codeword (``nearest_codeword``).

``residual_quantize`` is the loop on one batch. ``residual_fit`` is the same loop where each
level's codebook is first fitted on the whole residual entering it (K-Means initialization,
residual K-Means); ``codeword_sum`` decodes codes back to the sum of their codewords.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from genrec.tokenizer.kmeans import DEFAULT_CHUNK, kmeans, nearest

# (level, residual [n, d]) -> (quantized [n, d], code int64 [n], auxiliary loss scalar)
LevelRule = Callable[[int, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
# (level, whole residual [n, d]) -> (codebook [M, d], code int64 [n] or None): fits level l's codebook
LevelFit = Callable[[int, torch.Tensor], tuple[torch.Tensor, "torch.Tensor | None"]]


@dataclass
class ResidualOutput:
    quantized: torch.Tensor  # sum over levels of q_l [n, d]
    codes: torch.Tensor  # int64 [n, L]
    aux_loss: torch.Tensor  # sum over levels of aux_l (scalar)
    inputs: list[torch.Tensor]  # e^0 .. e^(L-1): the residual entering each level


def residual_quantize(x: torch.Tensor, num_levels: int, rule: LevelRule, *,
                      detach_residual: bool = False) -> ResidualOutput:
    """The residual loop over ``num_levels`` levels of ``rule``.

    ``detach_residual``: e^l = e^(l-1) - sg(q_l). With a straight-through q_l (RQ-VAE) the next
    level then sees r_l - c_l while the commitment gradient of later levels still reaches the encoder.
    """
    residual, total, codes, inputs, aux = x, torch.zeros_like(x), [], [], x.new_zeros(())
    for level in range(num_levels):
        inputs.append(residual)
        quantized, code, level_aux = rule(level, residual)
        total = total + quantized
        residual = residual - (quantized.detach() if detach_residual else quantized)
        codes.append(code)
        aux = aux + level_aux
    return ResidualOutput(total, torch.stack(codes, 1), aux, inputs)


def nearest_codeword(codebooks: Sequence[torch.Tensor], chunk: int = DEFAULT_CHUNK) -> LevelRule:
    """The hard rule: each residual row takes its nearest codeword of level l (no loss)."""

    def rule(level: int, residual: torch.Tensor):
        code, _ = nearest(residual, codebooks[level], chunk)
        return codebooks[level][code], code, residual.new_zeros(())

    return rule


def codeword_sum(codes: torch.Tensor, codebooks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Decode: sum over levels of codebook_l[code_l], [n, d]."""
    return sum(codebook[codes[:, level]] for level, codebook in enumerate(codebooks))


def kmeans_fit(codebook_size: int, seed: int = 0, chunk: int = DEFAULT_CHUNK, **kmeans_kwargs) -> LevelFit:
    """The fit of residual K-Means: K-Means on the level's residual, seeded ``seed + level``."""

    def fit(level: int, residual: torch.Tensor):
        result = kmeans(residual, codebook_size, seed=seed + level, chunk=chunk, **kmeans_kwargs)
        return result.centroids, result.labels

    return fit


def residual_fit(x: torch.Tensor, num_levels: int, fit: LevelFit, rule: LevelRule | None = None, *,
                 copy: bool = True, chunk: int = DEFAULT_CHUNK) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """Fit codebooks level by level: codebook l is fitted on the residual that levels 1..l-1 left.

    ``fit(level, residual)`` sees the whole residual entering level l and returns (codebook, code):
    code is the fit's assignment of every row (K-Means labels; None for a fit that assigns nothing).
    The residual then moves to level l + 1 by ``rule`` (default: subtract the codeword of the
    fitted code, i.e. residual K-Means / RQ; R3-VAE passes its rating rule so that layer l's
    codebook is fitted on the residuals its own layer l-1 produces). Returns each level's codebook
    and code.

    Unlike ``residual_quantize`` this runs without gradients in ONE residual buffer updated in
    place, ``chunk`` rows at a time, because fitting needs every row of level l before any row can
    move on, and at a million items a second or third copy of the data is what runs out of memory.
    The memory is one copy of ``x`` (none with ``copy=False``, which overwrites ``x``: pass only a
    tensor of your own) plus what ``fit`` needs.
    """
    codebooks, codes = [], []
    residual = x.detach().float()
    if copy:
        residual = residual.clone()
    with torch.no_grad():
        for level in range(num_levels):
            codebook, code = fit(level, residual)
            codebooks.append(codebook)
            codes.append(code)
            if level == num_levels - 1:
                break  # nothing reads the last residual
            for start in range(0, residual.shape[0], chunk):
                rows = residual[start:start + chunk]
                rows -= codebook[code[start:start + chunk]] if rule is None else rule(level, rows)[0]
    return codebooks, codes
