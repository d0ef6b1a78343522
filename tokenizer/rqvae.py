"""RQ-VAE (TIGER, the RQ-VAE note) and VQ-VAE baselines: MLP encoder -> STE quantization -> MLP decoder.

RQ-VAE: z = Enc(x) (small latent), residual nearest-codeword quantization over L codebooks,
straight-through estimator, loss = ||x - Dec(z_hat)||^2 + sum_l (||sg(r_l) - c_l||^2 + beta ||r_l - sg(c_l)||^2)
with beta = 0.25. ``kmeans_init`` (TIGER): codebook l = K-Means centroids of the level-l residuals of
the initial encoder's latents; without it codebooks start random (Gaussian at the latent scale),
which is the setting known to collapse.

VQ-VAE (paper baseline "without residual decomposition"): ONE codebook of M codewords. To give it
the same code length L as the others, the encoder outputs L latent vectors (an L-position latent
"grid", as VQ-VAE does for image patches) and each is quantized independently against the same
shared codebook; the decoder reads the concatenation. So its SID is L codes from one vocabulary,
each code carrying a separate part of the item rather than a refinement of the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from genrec.core.errors import GenrecError
from genrec.tokenizer.kmeans import kmeans, nearest
from genrec.tokenizer.quantize import build_mlp, ste_quantize
from genrec.tokenizer.residual import codeword_sum, kmeans_fit, nearest_codeword, residual_fit, residual_quantize
from genrec.tokenizer.training import GradientConfig, ModuleTokenizer


@dataclass
class RQVAEConfig(GradientConfig):
    hidden_dims: list[int] = field(default_factory=lambda: [512, 256, 128])  # TIGER's encoder
    latent_dim: int = 32
    beta: float = 0.25  # commitment weight
    kmeans_init: bool = True  # TIGER: K-Means init of each codebook on the first latents' residuals
    kmeans_iters: int = 20
    kmeans_batch_size: int | None = None
    epochs: int = 100  # (lr and the other training fields: GradientConfig's defaults)

    def validate(self) -> None:
        super().validate()
        if self.latent_dim < 1:
            raise GenrecError(f"latent_dim must be >= 1, got {self.latent_dim}")


@dataclass
class VQVAEConfig(RQVAEConfig):
    pass


class STEAutoencoder(torch.nn.Module):
    """Encoder -> quantizer -> decoder with STE. ``shared=False``: residual (RQ); True: L positions, one codebook."""

    def __init__(self, dim: int, config: RQVAEConfig, shared: bool) -> None:
        super().__init__()
        self.config, self.shared = config, shared
        positions = config.num_levels if shared else 1
        self.encoder = build_mlp([dim, *config.hidden_dims, config.latent_dim * positions])
        self.decoder = build_mlp([config.latent_dim * positions, *reversed(config.hidden_dims), dim])
        books = 1 if shared else config.num_levels
        self.codebooks = torch.nn.Parameter(torch.randn(books, config.codebook_size, config.latent_dim))

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        return z.view(x.shape[0] * self.config.num_levels, self.config.latent_dim) if self.shared else z

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (quantized latent, codes [n, L], codebook + commitment loss)."""
        if self.shared:
            quantized, codes, loss = ste_quantize(z, self.codebooks[0], self.config.beta)
            return quantized, codes.view(-1, self.config.num_levels), loss
        # As in residual VQ: the next level sees r_l - c_l; detaching the STE output keeps the
        # commitment gradient of later levels flowing into the encoder.
        out = residual_quantize(z, self.config.num_levels, self._ste_rule, detach_residual=True)
        return out.quantized, out.codes, out.aux_loss

    def _ste_rule(self, level: int, residual: torch.Tensor):
        return ste_quantize(residual, self.codebooks[level], self.config.beta)

    def training_loss(self, x: torch.Tensor):
        quantized, codes, vq_loss = self.quantize(self.latents(x))
        x_hat = self.decoder(quantized.reshape(x.shape[0], -1))
        reconstruction = ((x - x_hat) ** 2).sum(-1).mean()
        return reconstruction + vq_loss, {"rec": reconstruction.detach(), "vq": vq_loss.detach()}, codes

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        cfg = self.config
        z = self.latents(x)
        if not cfg.kmeans_init:
            # Random codebook at the scale of the latents: the setting where RQ-VAE tends to collapse.
            self.codebooks.copy_(torch.randn_like(self.codebooks) * z.std())
        elif self.shared:
            self.codebooks[0] = kmeans(z, cfg.codebook_size, iters=cfg.kmeans_iters, seed=cfg.seed,
                                       batch_size=cfg.kmeans_batch_size).centroids
        else:
            books, _ = residual_fit(z, cfg.num_levels, kmeans_fit(cfg.codebook_size, seed=cfg.seed,
                                                                  iters=cfg.kmeans_iters,
                                                                  batch_size=cfg.kmeans_batch_size))
            self.codebooks.copy_(torch.stack(books))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = self.latents(x)
        if self.shared:
            return nearest(z, self.codebooks[0])[0].view(-1, self.config.num_levels)
        return residual_quantize(z, self.config.num_levels, nearest_codeword(self.codebooks)).codes

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return self.decoder(self.codebooks[0][codes].reshape(codes.shape[0], -1))
        return self.decoder(codeword_sum(codes, self.codebooks))


class RQVAETokenizer(ModuleTokenizer):
    method = "rqvae"
    config_class = RQVAEConfig
    shared_codebook = False

    def _build_model(self, dim: int) -> STEAutoencoder:
        return STEAutoencoder(dim, self.config, self.shared_codebook)

    def codebooks(self):
        books = super().codebooks()
        return books * self.num_levels if self.shared_codebook else books


class VQVAETokenizer(RQVAETokenizer):
    method = "vqvae"
    config_class = VQVAEConfig
    shared_codebook = True
