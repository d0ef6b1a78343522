"""``SASRecConfig``: SASRec's size and inputs. No torch here (as recommender.model_config for the T5),
so the CLI and the pipeline's config dataclasses import it at once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SASRecConfig:
    num_items: int = 0  # M; item ids 1..M, 0 = padding
    text_dim: int = 0  # width of the item text embeddings (0 = id embeddings only)
    use_ids: bool = True  # learned id embeddings (False: items are their projected text alone)
    max_len: int = 50  # most recent items read
    d_model: int = 64
    d_ff: int = 256
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.2
    # In training, each item's id embedding is dropped with this probability per step, in the input
    # and the output alike, so the text projection alone must rank items too (DropoutNet, Volkovs et
    # al., NeurIPS 2017); only a model with both id and text embeddings has anything to drop.
    # 0.5 over 0 on Beauty validation (docs/sasrec.md).
    id_dropout: float = 0.5

    def check(self) -> None:
        """Settings a model can be built from; a one-line GenrecError otherwise."""
        from genrec.core.errors import GenrecError

        for name in ("max_len", "d_model", "d_ff", "num_layers", "num_heads"):
            if getattr(self, name) < 1:
                raise GenrecError(f"SASRec {name} must be at least 1, got {getattr(self, name)}")
        if self.d_model % self.num_heads:
            raise GenrecError(f"SASRec d_model ({self.d_model}) must be a multiple of num_heads ({self.num_heads})")
        if not 0 <= self.dropout < 1:
            raise GenrecError(f"SASRec dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.id_dropout < 1:
            raise GenrecError(f"SASRec id_dropout must be in [0, 1), got {self.id_dropout}")
