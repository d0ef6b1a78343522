"""``RecommenderConfig``: the T5 recommender's size and inputs. No torch here (as transformers'
configuration_*.py beside modeling_*.py), so the CLI builds its options from these fields at once."""

from __future__ import annotations

from dataclasses import dataclass

# What the encoder reads per history position (recommender.encoder_input) and how its positions
# attend (recommender.item_causal).
ENCODER_INPUTS = ("tokens", "items")
ENCODER_ATTENTION = ("bidirectional", "item_causal")


@dataclass
class RecommenderConfig:
    """Model size (TIGER's defaults) and input shape."""

    num_encoder_layers: int = 4
    num_decoder_layers: int = 4
    d_model: int = 128
    num_heads: int = 6
    d_kv: int = 64
    d_ff: int = 1024
    dropout: float = 0.1
    feed_forward_proj: str = "relu"
    max_history: int = 20  # most recent items fed to the encoder
    num_user_buckets: int = 0  # hashed user token; 0 = off
    # "bidirectional" (TIGER: every history token sees every other, eos last) or "item_causal"
    # (a token sees items up to its own, no eos): lets one encoder pass train every target of a
    # user sequence (recommender.item_causal). Bidirectional kept on validation for the cpu recipe:
    # bench/results/t5-defaults-beauty/ (item-causal level on NDCG@10).
    encoder_attention: str = "bidirectional"
    # "tokens" (TIGER: one encoder position per SID token) or "items" (one position per item, the
    # sum of its SID token embeddings; recommender.encoder_input).
    encoder_input: str = "tokens"
    # With encoder_input "items", each position also reads its item's projected text embedding
    # (item_text) and / or a learned id embedding dropped per item and step with id_dropout
    # (item_ids): recommender.item_input.
    item_text: bool = False
    item_ids: bool = False
    id_dropout: float = 0.5
    # Weight of LIGER's dense item loss beside the SID cross-entropy in training (needs item_text
    # or item_ids; recommender.item_input.dense_item_loss); 0 = off.
    dense_loss: float = 0.0
    dense_negatives: int = 1024  # the dense loss's softmax: batch targets + this many uniform items (0 = all)
    # Label smoothing of the SID-token cross-entropy in training (0 = off).
    label_smoothing: float = 0.0
    # How the SID code tokens' embeddings start: "random" (T5's init) or "centroids" (each code's
    # residual centroid over the items' text embeddings, projected: recommender.code_init).
    code_init: str = "random"

    @property
    def reads_item_features(self) -> bool:
        return self.item_text or self.item_ids

    def check(self) -> None:
        """Settings a model can be built from; a one-line GenrecError otherwise."""
        from genrec.core.errors import GenrecError

        if self.encoder_attention not in ENCODER_ATTENTION:
            raise GenrecError(f"encoder_attention must be one of {', '.join(ENCODER_ATTENTION)}, "
                              f"got {self.encoder_attention!r}")
        if self.encoder_input not in ENCODER_INPUTS:
            raise GenrecError(f"encoder_input must be one of {', '.join(ENCODER_INPUTS)}, got {self.encoder_input!r}")
        if self.reads_item_features and self.encoder_input != "items":
            raise GenrecError("item_text / item_ids need encoder_input 'items' (one encoder position per item)")
        if self.dense_loss and not self.reads_item_features:
            raise GenrecError("dense_loss needs item vectors: set item_text and / or item_ids")
        if self.dense_loss and self.encoder_attention != "bidirectional":
            raise GenrecError("dense_loss is built for the bidirectional encoder")
        if self.dense_negatives < 0:
            raise GenrecError(f"dense_negatives must be >= 0, got {self.dense_negatives}")
        if not 0 <= self.label_smoothing < 1:
            raise GenrecError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.code_init not in ("random", "centroids"):
            raise GenrecError(f"code_init must be random or centroids, got {self.code_init!r}")
        if not 0 <= self.id_dropout < 1:
            raise GenrecError(f"id_dropout must be in [0, 1), got {self.id_dropout}")
