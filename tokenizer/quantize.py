"""Quantization building blocks shared by the gradient-trained tokenizers."""

from __future__ import annotations

import torch

from genrec.tokenizer.kmeans import nearest


def ste_quantize(z: torch.Tensor, codebook: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest-codeword quantization with the straight-through estimator (RQ-VAE note, VQ-VAE).

    Returns (quantized, codes, loss). The forward value of ``quantized`` is the chosen codeword; its
    gradient with respect to ``z`` is the identity (z + sg(c - z)). loss = codebook term
    ||sg(z) - c||^2 + beta * commitment term ||z - sg(c)||^2 (squared norms, mean over rows).
    """
    codes, _ = nearest(z.detach(), codebook.detach())
    chosen = codebook[codes]
    loss = ((z.detach() - chosen) ** 2).sum(-1).mean() + beta * ((z - chosen.detach()) ** 2).sum(-1).mean()
    return z + (chosen - z).detach(), codes, loss


def build_mlp(sizes: list[int]) -> torch.nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)
