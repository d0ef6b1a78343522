"""SASRec: a causal self-attention next-item model (Kang & McAuley, ICDM 2018), trained with a
softmax over the catalogue.

An item's vector is a learned id embedding plus a linear projection of its (fixed, unit) text
embedding, so an item never seen in training still has a vector from its text. The same table
embeds the input sequence and scores the next item (tied weights). Blocks are pre-LayerNorm;
position p attends to positions <= p that hold an item (sequences are left-padded with item 0).

Losses (``sasrec_loss``): the full softmax over all M items at every non-padding position, or a
sampled softmax over N negatives shared by the batch, drawn uniformly or by popularity, with the
logQ correction (Yi et al., RecSys 2019: each logit minus log of its sampling probability) and
accidental hits of the positive removed. With every item as a negative and no correction the two
are the same loss (``tests/test_sasrec.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from genrec.recommender.sasrec_config import SASRecConfig
from genrec.recommender.train_config import NEGATIVE_SAMPLERS


class CausalSelfAttention(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.heads = config.num_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.ln_attention = nn.LayerNorm(config.d_model)
        self.attention = CausalSelfAttention(config)
        self.ln_mlp = nn.LayerNorm(config.d_model)
        self.mlp = nn.Sequential(nn.Linear(config.d_model, config.d_ff), nn.GELU(),
                                 nn.Linear(config.d_ff, config.d_model))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.ln_attention(x), mask))
        return x + self.dropout(self.mlp(self.ln_mlp(x)))


class SASRec(nn.Module):
    def __init__(self, config: SASRecConfig, text: np.ndarray | torch.Tensor | None = None):
        """``text``: [M, text_dim] item text embeddings (row i = item i + 1), required when
        ``config.text_dim`` > 0; stored unit-normalised as a buffer (saved with the weights)."""
        super().__init__()
        if not config.use_ids and not config.text_dim:
            raise ValueError("SASRec needs id embeddings, text embeddings or both")
        self.config = config
        self.item_ids = nn.Embedding(config.num_items + 1, config.d_model, padding_idx=0) if config.use_ids else None
        if config.text_dim:
            table = torch.zeros(config.num_items + 1, config.text_dim)
            if text is not None:
                text = torch.as_tensor(np.asarray(text), dtype=torch.float32)
                if tuple(text.shape) != (config.num_items, config.text_dim):
                    raise ValueError(f"text embeddings {tuple(text.shape)} != ({config.num_items}, {config.text_dim})")
                table[1:] = F.normalize(text, dim=-1)
            self.register_buffer("item_text", table)
            self.text_projection = nn.Linear(config.text_dim, config.d_model, bias=False)
        else:
            self.item_text, self.text_projection = None, None
        self.positions = nn.Embedding(config.max_len, config.d_model)
        self.input_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.ln_final = nn.LayerNorm(config.d_model)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

    def with_items(self, num_items: int, text: np.ndarray | torch.Tensor | None = None) -> "SASRec":
        """A copy over items 1..``num_items`` (every other weight shared in value): fewer cuts the
        item tables; more appends items with a zero id embedding and ``text`` [added, text_dim] as
        their text (unit-normalised; required when the model reads text), so an item it was never
        trained on is scored from its text alone."""
        added = num_items - self.config.num_items
        config = replace(self.config, num_items=num_items)
        state = dict(self.state_dict())
        if self.item_ids is not None:
            table = torch.zeros(num_items + 1, config.d_model, dtype=self.item_ids.weight.dtype)
            table[:min(num_items, self.config.num_items) + 1] = self.item_ids.weight.detach()[:num_items + 1]
            state["item_ids.weight"] = table
        if self.item_text is not None:
            table = torch.zeros(num_items + 1, config.text_dim, dtype=self.item_text.dtype)
            table[:min(num_items, self.config.num_items) + 1] = self.item_text[:num_items + 1]
            if added > 0:
                rows = torch.as_tensor(np.asarray(text), dtype=torch.float32) if text is not None else None
                if rows is None or tuple(rows.shape) != (added, config.text_dim):
                    raise ValueError(f"{added} added items need text embeddings [{added}, {config.text_dim}]")
                table[self.config.num_items + 1:] = F.normalize(rows, dim=-1)
            state["item_text"] = table
        model = SASRec(config)
        model.load_state_dict(state)
        return model.to(next(self.parameters()).device).train(self.training)

    def sample_id_keep(self) -> torch.Tensor | None:
        """A step's id-dropout mask [M + 1] (1 = the item keeps its id embedding), or None when
        nothing is dropped (evaluation, ``id_dropout`` 0, or ids or text missing)."""
        if not (self.training and self.config.id_dropout and self.item_ids is not None
                and self.item_text is not None):
            return None
        draws = torch.rand(self.config.num_items + 1, device=self.positions.weight.device)
        return (draws >= self.config.id_dropout).float()

    def item_vectors(self, items: torch.Tensor | None = None, id_keep: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors of ``items`` (any shape of ids; None = the whole table [M + 1, d], row 0 = padding);
        ``id_keep`` ([M + 1], ``sample_id_keep``) scales each item's id embedding."""
        vectors = 0.0
        if self.item_ids is not None:
            vectors = self.item_ids.weight if items is None else self.item_ids(items)
            if id_keep is not None:
                vectors = vectors * (id_keep if items is None else id_keep[items]).unsqueeze(-1)
        if self.text_projection is not None:
            text = self.item_text if items is None else self.item_text[items]
            vectors = vectors + self.text_projection(text)
        return vectors

    def forward(self, sequences: torch.Tensor, id_keep: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states [batch, T, d] for left-padded item sequences [batch, T] (T <= max_len):
        position p summarises items up to p, the input for predicting item p + 1."""
        batch, length = sequences.shape
        if length > self.config.max_len:
            raise ValueError(f"sequences of {length} items; this model reads at most {self.config.max_len}")
        real = sequences > 0
        x = self.item_vectors(sequences, id_keep) * math.sqrt(self.config.d_model)
        # Left padding: the most recent item always sits at position max_len - 1.
        positions = torch.arange(self.config.max_len - length, self.config.max_len, device=sequences.device)
        x = self.input_dropout((x + self.positions(positions)) * real.unsqueeze(-1))
        causal = torch.ones(length, length, dtype=torch.bool, device=sequences.device).tril()
        # A query sees earlier real items and always itself (a padding row would otherwise see nothing).
        mask = (causal & real[:, None, :]) | torch.eye(length, dtype=torch.bool, device=sequences.device)
        mask = mask.unsqueeze(1)  # [batch, 1 (heads), T, T]
        for block in self.blocks:
            x = block(x, mask)
        return self.ln_final(x)

    def scores(self, sequences: torch.Tensor) -> torch.Tensor:
        """Next-item logits [batch, M + 1] after each sequence's last position (column 0 = -inf)."""
        hidden = self.forward(sequences)[:, -1]
        logits = hidden @ self.item_vectors().T
        logits[:, 0] = float("-inf")
        return logits


@dataclass
class NegativeSampler:
    """Shared negatives for the sampled softmax: ``count`` item ids per batch, uniformly or in
    proportion to training popularity, with each item's log sampling probability (logQ)."""

    log_q: torch.Tensor  # [M + 1] log probability of drawing each item (row 0 = -inf)
    count: int

    @classmethod
    def build(cls, kind: str, count: int, num_items: int, item_counts: np.ndarray | None = None) -> "NegativeSampler":
        if kind not in NEGATIVE_SAMPLERS:
            raise ValueError(f"negative sampler must be one of {', '.join(NEGATIVE_SAMPLERS)}, got {kind!r}")
        weights = np.ones(num_items + 1)
        if kind == "popularity":
            weights = np.asarray(item_counts, dtype=np.float64) + 1.0  # +1: every item can be drawn
        weights[0] = 0.0
        probabilities = weights / weights.sum()
        with np.errstate(divide="ignore"):
            return cls(torch.from_numpy(np.log(probabilities)).float(), count)

    def draw(self, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.multinomial(self.log_q.exp(), self.count, replacement=True, generator=generator)


def sasrec_loss(model: SASRec, inputs: torch.Tensor, targets: torch.Tensor,
                negatives: torch.Tensor | None = None, log_q: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of the next item over every position whose target is an item (> 0).

    ``negatives`` None: full softmax over items 1..M. Otherwise a sampled softmax over
    [positive, negatives] per position, negatives equal to the positive masked out, and with
    ``log_q`` ([M + 1]) every logit minus the log probability of sampling its item. One id-dropout
    mask serves the inputs and the scored items. ``model`` may be wrapped (DDP): the forward pass
    goes through the wrapper, the item table is read from the module inside.
    """
    module = getattr(model, "module", model)
    id_keep = module.sample_id_keep()
    hidden = model(inputs, id_keep)
    keep = targets > 0
    hidden, targets = hidden[keep], targets[keep]  # [P, d], [P]: padding positions cost nothing
    if negatives is None:
        logits = hidden @ module.item_vectors(None, id_keep).T
        logits[:, 0] = float("-inf")
        return F.cross_entropy(logits, targets)
    positive = (hidden * module.item_vectors(targets, id_keep)).sum(-1, keepdim=True)  # [P, 1]
    negative = hidden @ module.item_vectors(negatives, id_keep).T  # [P, N]
    if log_q is not None:
        positive = positive - log_q[targets].unsqueeze(-1)
        negative = negative - log_q[negatives].unsqueeze(0)
    negative = negative.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(-1), float("-inf"))
    logits = torch.cat([positive, negative], dim=1)
    return F.cross_entropy(logits, torch.zeros(len(targets), dtype=torch.long, device=logits.device))
