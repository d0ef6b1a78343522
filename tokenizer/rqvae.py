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
from genrec.tokenizer.base import Tokenizer, validate_common
from genrec.tokenizer.kmeans import kmeans, nearest, residual_fit
from genrec.tokenizer.quantize import build_mlp, ste_quantize
from genrec.tokenizer.training import train_module


@dataclass
class RQVAEConfig:
    num_levels: int = 3
    codebook_size: int = 256
    hidden_dims: list[int] = field(default_factory=lambda: [512, 256, 128])  # TIGER's encoder
    latent_dim: int = 32
    beta: float = 0.25  # commitment weight
    kmeans_init: bool = True  # TIGER: K-Means init of each codebook on the first latents' residuals
    kmeans_iters: int = 20
    kmeans_batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-5
    epochs: int = 100
    batch_size: int = 1024
    max_steps: int | None = None
    seed: int = 0

    def validate(self) -> None:
        validate_common(self)
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
        residual, total, codes, loss = z, torch.zeros_like(z), [], z.new_zeros(())
        for book in self.codebooks:
            quantized, code, level_loss = ste_quantize(residual, book, self.config.beta)
            total = total + quantized
            # As in residual VQ: the next level sees r_l - c_l; detaching the STE output keeps the
            # commitment gradient of later levels flowing into the encoder.
            residual = residual - quantized.detach()
            codes.append(code)
            loss = loss + level_loss
        return total, torch.stack(codes, 1), loss

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
            books, _ = residual_fit(z, cfg.num_levels, cfg.codebook_size, seed=cfg.seed, iters=cfg.kmeans_iters,
                                    batch_size=cfg.kmeans_batch_size)
            self.codebooks.copy_(torch.stack(books))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = self.latents(x)
        if self.shared:
            return nearest(z, self.codebooks[0])[0].view(-1, self.config.num_levels)
        codes = []
        for book in self.codebooks:
            code, _ = nearest(z, book)
            codes.append(code)
            z = z - book[code]
        return torch.stack(codes, 1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return self.decoder(self.codebooks[0][codes].reshape(codes.shape[0], -1))
        return self.decoder(sum(book[codes[:, level]] for level, book in enumerate(self.codebooks)))


class RQVAETokenizer(Tokenizer):
    method = "rqvae"
    config_class = RQVAEConfig
    shared_codebook = False

    def _fit(self, x: torch.Tensor, progress: bool) -> None:
        cfg = self.config
        self.model = STEAutoencoder(x.shape[1], cfg, self.shared_codebook)
        self.model.initialize(x)
        train_module(self.model, x, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                     weight_decay=cfg.weight_decay, seed=cfg.seed, codebook_sizes=self.codebook_sizes,
                     history=self.history, progress=progress, desc=f"train {self.method}", max_steps=cfg.max_steps)

    def _encode(self, x):
        return self.model.encode(x)

    def _decode(self, codes):
        return self.model.decode(codes)

    def state_dict(self):
        return self.model.state_dict()

    def load_state_dict(self, state):
        self.model = STEAutoencoder(self.embedding_dim, self.config, self.shared_codebook)
        self.model.load_state_dict(state)
        self.model.eval()

    def codebooks(self):
        books = [book.detach() for book in self.model.codebooks]
        return books * self.num_levels if self.shared_codebook else books


class VQVAETokenizer(RQVAETokenizer):
    method = "vqvae"
    config_class = VQVAEConfig
    shared_codebook = True
