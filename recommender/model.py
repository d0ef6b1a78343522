"""The recommender: a T5 encoder-decoder built from a config (no pretrained weights)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from transformers import T5Config, T5ForConditionalGeneration

from genrec.recommender.vocab import EOS_TOKEN, PAD_TOKEN, SidVocab


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
    # user sequence (recommender.item_causal).
    encoder_attention: str = "bidirectional"
    # "tokens" (TIGER: one encoder position per SID token) or "items" (one position per item, the
    # sum of its SID token embeddings; recommender.encoder_input).
    encoder_input: str = "tokens"


def build_model(config: RecommenderConfig, vocab: SidVocab) -> T5ForConditionalGeneration:
    from genrec.core.errors import GenrecError
    from genrec.recommender.encoder_input import ENCODER_INPUTS
    from genrec.recommender.item_causal import ENCODER_ATTENTION

    if config.encoder_attention not in ENCODER_ATTENTION:
        raise GenrecError(f"encoder_attention must be one of {', '.join(ENCODER_ATTENTION)}, "
                          f"got {config.encoder_attention!r}")
    if config.encoder_input not in ENCODER_INPUTS:
        raise GenrecError(f"encoder_input must be one of {', '.join(ENCODER_INPUTS)}, got {config.encoder_input!r}")
    t5_config = T5Config(
        vocab_size=vocab.vocab_size,
        d_model=config.d_model,
        d_kv=config.d_kv,
        d_ff=config.d_ff,
        num_layers=config.num_encoder_layers,
        num_decoder_layers=config.num_decoder_layers,
        num_heads=config.num_heads,
        dropout_rate=config.dropout,
        feed_forward_proj=config.feed_forward_proj,
        pad_token_id=PAD_TOKEN,
        eos_token_id=EOS_TOKEN,
        decoder_start_token_id=PAD_TOKEN,
        tie_word_embeddings=True,
    )
    t5_config.genrec = {"recommender": asdict(config), "position_sizes": list(vocab.position_sizes)}
    return T5ForConditionalGeneration(t5_config)
