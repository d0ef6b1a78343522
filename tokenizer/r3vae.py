"""R3-VAE: reference-vector-guided rating residual quantization (paper §3, eqs 1-13).

    alpha = x.r / ||r||^2,  e0 = x - alpha r                                  (eqs 1-2)
    s_k = cos(e^(l-1), c_k^l),  w = softmax(s / temperature)                  (eqs 3-4)
    e_hat^(l) = sum over the top-K k of w_k c_k^l,  e^(l) = e^(l-1) - e_hat^(l) (eqs 5-6)
    SID = [argmax_k w^1, ..., argmax_k w^L]                                    (eq 7)
    x_hat = decoder(alpha r + sum_l e_hat^(l)),  L_rec = ||x - x_hat||^2         (eq 11)
    L = L_rec + lambda (-SC + PD)                                               (eqs 12-13)

No straight-through estimator: codewords, r and the decoder get gradients through the softmax
weights. SC (eqs 8-9) is computed per batch on the residual entering each level, grouped by that
level's code; PD (eq 10, t = 2) on each level's codewords; both averaged over levels.

Choices the paper leaves open, each a config field. The defaults were chosen by measurement on
Beauty (L=3, M=256, 40 epochs); the table and how it was measured are in
bench/results/tokenizers/r3vae-options.md. Why each default:

  * temperature (eq 4 is softmax(s / temperature)). At 1.0 (eq 4 literally) the weights over 256
    codewords are nearly uniform: e_hat blurs the whole codebook, codewords grow to compensate
    (decoding one codeword per level is then meaningless: hard rec 18.8) and 2.5 items share a SID.
    0.05 gave the fewest collisions (1.09, the paper's Table 6 reports ~1.1) and the most even buckets.
  * top_k (eq 5): number of top-weighted codewords summed; renormalize_top_k rescales their
    weights to sum to 1 (the paper sums the raw eq-4 weights). K=1 reconstructs best from the codes
    alone but collides more (1.28, like residual K-Means); K=8 is the default.
  * decoder: "identity" is eq 11 literally (default: a linear decoder, initialized to the
    identity, changed nothing measurable); "linear" or "mlp" are options.
  * encode_residual: residuals when assigning SIDs after training: "soft" (eq 6, exactly the
    training computation; default, slightly fewer collisions) or "hard" (subtract the argmax codeword).
  * decode(codes): the SID does not carry alpha, so decoding uses the training mean of alpha with
    the argmax codewords: x_hat = decoder(mean_alpha r + sum_l c^l_{code_l}).
Ablations (paper Tables 8-9): use_reference=False (e0 = x), rating="ste" (nearest codeword with a
straight-through estimator and codebook + beta commitment loss, as RQ-VAE), use_sc, use_pd,
metric_weight (lambda), kmeans_init=False (codebooks drawn from random residuals, §4.8).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genrec.core.errors import GenrecError
from genrec.tokenizer.quantize import build_mlp, ste_quantize
from genrec.tokenizer.regularizers import preference_discrimination, semantic_cohesion
from genrec.tokenizer.residual import ResidualOutput, codeword_sum, kmeans_fit, residual_fit, residual_quantize
from genrec.tokenizer.training import GradientConfig, ModuleTokenizer

TEMPERATURE_DEFAULT = 0.05


@dataclass
class R3VAEConfig(GradientConfig):
    temperature: float = TEMPERATURE_DEFAULT  # softmax temperature over cosine ratings (eq 4)
    top_k: int = 8  # K in eq 5
    renormalize_top_k: bool = True  # rescale the K kept weights to sum to 1
    decoder: str = "identity"  # identity (eq 11) | linear | mlp
    encode_residual: str = "soft"  # soft (eq 6) | hard, used by encode() after training
    use_reference: bool = True  # ablation: False -> e0 = x (no reference vector)
    rating: str = "softmax"  # softmax (eqs 3-5) | ste (ablation: nearest codeword + straight-through)
    use_sc: bool = True  # -SC term of eq 12
    use_pd: bool = True  # +PD term of eq 12
    metric_weight: float = 0.01  # lambda, eq 13
    pd_t: float = 2.0  # t in eq 10
    beta: float = 0.25  # commitment weight, only for rating="ste"
    kmeans_init: bool = True  # §3.3.1 codebook initialization
    kmeans_iters: int = 20
    kmeans_batch_size: int | None = None  # set for mini-batch K-Means init on very large catalogues
    kmeans_seeding: str = "kmeans++"  # kmeans++ | random (cheaper for very large codebooks)
    lr: float = 5e-4  # AdamW, §3.5 (the other training fields: GradientConfig's defaults)

    def validate(self) -> None:
        super().validate()
        if self.temperature <= 0:
            raise GenrecError(f"temperature must be > 0, got {self.temperature}")
        if not 1 <= self.top_k <= self.codebook_size:
            raise GenrecError(f"top_k must be in 1..codebook_size, got {self.top_k}")
        for name, value, allowed in (("decoder", self.decoder, ("identity", "linear", "mlp")),
                                     ("encode_residual", self.encode_residual, ("soft", "hard")),
                                     ("rating", self.rating, ("softmax", "ste"))):
            if value not in allowed:
                raise GenrecError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


class R3VAE(torch.nn.Module):
    """The R3-VAE network: reference vector r, L codebooks [L, M, d], decoder."""

    def __init__(self, dim: int, config: R3VAEConfig) -> None:
        super().__init__()
        self.config = config
        self.reference = torch.nn.Parameter(torch.randn(dim) / dim ** 0.5)  # r
        self.codebooks = torch.nn.Parameter(torch.randn(config.num_levels, config.codebook_size, dim) / dim ** 0.5)
        self.register_buffer("alpha_mean", torch.zeros(()))
        if config.decoder == "identity":
            self.decoder = torch.nn.Identity()
        elif config.decoder == "linear":
            self.decoder = torch.nn.Linear(dim, dim)
            with torch.no_grad():  # start as eq 11's identity
                self.decoder.weight.copy_(torch.eye(dim))
                self.decoder.bias.zero_()
        else:
            self.decoder = build_mlp([dim, 2 * dim, dim])

    def project(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eqs 1-2: alpha = x.r / ||r||^2 and e0 = x - alpha r (alpha = 0, e0 = x without reference)."""
        if not self.config.use_reference:
            return x.new_zeros(x.shape[0]), x
        alpha = x @ self.reference / (self.reference @ self.reference)
        return alpha, x - alpha[:, None] * self.reference

    def rate(self, level: int, e: torch.Tensor, hard: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One rating-quantization layer on residual ``e``: returns (e_hat, code, auxiliary loss)."""
        cfg, book = self.config, self.codebooks[level]
        if cfg.rating == "ste":
            return ste_quantize(e, book, cfg.beta)
        scores = F.normalize(e, dim=-1) @ F.normalize(book, dim=-1).T  # eq 3
        weights = torch.softmax(scores / cfg.temperature, dim=-1)  # eq 4
        top_w, top_i = weights.topk(cfg.top_k, dim=-1)
        code = top_i[:, 0]  # eq 7: argmax_k w_k
        if hard:
            return book[code], code, e.new_zeros(())
        if cfg.renormalize_top_k:
            top_w = top_w / top_w.sum(-1, keepdim=True)
        # eq 5 as a (mostly zero) weight matrix times the codebook: one matmul, no [n, K, d] gather.
        quantized = torch.zeros_like(weights).scatter(1, top_i, top_w) @ book
        return quantized, code, e.new_zeros(())

    def quantize(self, e: torch.Tensor, hard: bool = False) -> ResidualOutput:
        """All L layers with eq 6 between them: e^l = e^(l-1) - e_hat^(l) (gradients flow through every e^l)."""
        return residual_quantize(e, self.config.num_levels, lambda level, residual: self.rate(level, residual, hard))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """r at the data mean (the 'semantic centre', §3.2.1); §3.3.1 K-Means codebook initialization:
        C^1 = K-Means(e0), C^l = K-Means(residuals that layer l-1 itself produces)."""
        cfg = self.config
        if cfg.use_reference:
            self.reference.copy_(x.mean(0))
        _, e0 = self.project(x)
        if cfg.kmeans_init:
            choose = kmeans_fit(cfg.codebook_size, seed=cfg.seed, iters=cfg.kmeans_iters,
                                batch_size=cfg.kmeans_batch_size, init=cfg.kmeans_seeding)
        else:  # ablation: codewords are random residuals of the previous layer (no assignment)
            def choose(level: int, residual: torch.Tensor):
                return residual[torch.randperm(residual.shape[0])[:cfg.codebook_size]].clone(), None

        def fit(level: int, residual: torch.Tensor):
            codebook, code = choose(level, residual)
            self.codebooks[level] = codebook  # the rating rule below quantizes with it
            return codebook, code

        # residual_fit overwrites its buffer. It may reuse e0's memory only when e0 is a fresh tensor:
        # without the reference vector, project returns x itself, the caller's embeddings.
        residual_fit(e0, cfg.num_levels, fit, lambda level, rows: self.rate(level, rows), copy=e0 is x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ResidualOutput, torch.Tensor]:
        """Returns (x_hat of eq 11, the residual quantization of e0, alpha)."""
        alpha, e0 = self.project(x)
        out = self.quantize(e0)
        x_hat = self.decoder(alpha[:, None] * self.reference + out.quantized)
        return x_hat, out, alpha

    def training_loss(self, x: torch.Tensor):
        cfg = self.config
        x_hat, out, _ = self(x)
        codes, inputs = out.codes, out.inputs
        reconstruction = ((x - x_hat) ** 2).sum(-1).mean()  # eq 11, averaged over the batch
        parts = {"rec": reconstruction.detach()}
        metric = x.new_zeros(())
        if cfg.use_sc:  # -SC_avg: residuals entering level l that share the level-l code
            sc_values = [semantic_cohesion(inputs[level], codes[:, level]) for level in range(cfg.num_levels)]
            sc = torch.stack([v for v in sc_values if not torch.isnan(v)] or [x.new_zeros(())]).mean()
            metric = metric - sc
            parts["sc"] = sc.detach()
        if cfg.use_pd:  # +PD_avg over each level's codewords
            pd = torch.stack([preference_discrimination(book, cfg.pd_t) for book in self.codebooks]).mean()
            metric = metric + pd
            parts["pd"] = pd.detach()
        loss = reconstruction + cfg.metric_weight * metric + out.aux_loss  # eq 13
        return loss, parts, codes

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        _, e0 = self.project(x)
        return self.quantize(e0, hard=self.config.encode_residual == "hard").codes

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.alpha_mean * self.reference + codeword_sum(codes, self.codebooks))


class R3VAETokenizer(ModuleTokenizer):
    method = "r3vae"
    config_class = R3VAEConfig

    def _build_model(self, dim: int) -> R3VAE:
        return R3VAE(dim, self.config)

    def _fit(self, x: torch.Tensor, progress: bool) -> None:
        super()._fit(x, progress)
        with torch.no_grad():  # decode(codes) has no alpha: it uses the training mean
            alphas = torch.cat([self.model.project(chunk)[0] for chunk in x.split(65536)])
            self.model.alpha_mean.fill_(float(alphas.mean()))
