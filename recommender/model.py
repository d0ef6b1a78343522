"""The recommender: a T5 encoder-decoder built from a ``RecommenderConfig`` (no pretrained weights),
saved and loaded with its ``item_input`` (recommender.item_input)."""

from __future__ import annotations

from dataclasses import asdict

from transformers import T5Config, T5ForConditionalGeneration

from genrec.recommender.model_config import RecommenderConfig
from genrec.recommender.vocab import EOS_TOKEN, PAD_TOKEN, SidVocab


def build_model(config: RecommenderConfig, vocab: SidVocab, item_tokens=None, text=None) -> T5ForConditionalGeneration:
    """A fresh T5 for ``vocab``; with ``config.reads_item_features`` also its ``item_input`` module,
    built from every item's SID tokens ``item_tokens`` [M, L + 1] and (item_text) their text
    embeddings ``text`` [M, d_text]."""
    from genrec.core.errors import GenrecError

    config.check()
    if config.item_text and text is None:
        raise GenrecError("item_text needs the items' text embeddings (run `genrec embed`)")
    if config.code_init == "centroids" and (text is None or item_tokens is None):
        raise GenrecError("code_init centroids needs the items' SIDs and text embeddings (run `genrec embed`)")
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
    model = T5ForConditionalGeneration(t5_config)
    if config.code_init == "centroids":
        from genrec.recommender.code_init import init_code_embeddings

        init_code_embeddings(model.shared, item_tokens, text, len(vocab.position_sizes) - 1)
    if config.reads_item_features:
        attach_item_input(model, config, vocab.vocab_size, item_tokens, text)
    return model


def attach_item_input(model, config: RecommenderConfig, vocab_size: int, item_tokens, text=None, state=None) -> None:
    """Give ``model`` its ``item_input`` submodule (and, when loading, its saved ``state``)."""
    from genrec.recommender.item_input import ItemInput

    model.item_input = ItemInput(item_tokens, vocab_size, config.d_model, text if config.item_text else None,
                                 use_ids=config.item_ids, id_dropout=config.id_dropout,
                                 dense_head=config.dense_loss > 0)
    if state is not None:
        model.item_input.load_state_dict(state)


def load_model(path, sids) -> T5ForConditionalGeneration:
    """A saved T5 (``save_pretrained``) with its ``item_input`` when it was trained with one;
    ``sids``: the Semantic IDs it was trained on (the bundled tokenizer's)."""
    from pathlib import Path

    from safetensors.torch import load_file
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # item_input.* are ours, not T5's: no "unused weights" warning
    try:
        model = T5ForConditionalGeneration.from_pretrained(path)
    finally:
        transformers_logging.set_verbosity(verbosity)
    config = RecommenderConfig(**model.config.genrec["recommender"])
    if config.reads_item_features:
        prefix = "item_input."
        state = {k[len(prefix):]: v for k, v in load_file(Path(path) / "model.safetensors").items() if k.startswith(prefix)}
        vocab = SidVocab.for_semantic_ids(sids, config.num_user_buckets)
        state = grown_item_state(state, sids.num_items)
        text = state["text"][1:].numpy() if config.item_text else None
        attach_item_input(model, config, vocab.vocab_size, vocab.item_tokens(sids.codes), text, state)
    return model


def grown_item_state(state: dict, num_items: int) -> dict:
    """A saved ``item_input`` state for ``num_items`` items (add-items grew the catalogue after
    training): the key table is rebuilt from the SIDs, and the new items' id rows (never trained,
    as if dropped: ``ItemInput``'s id dropout) and text rows not written yet are zeros."""
    import torch

    state = {k: v for k, v in state.items() if k not in ("sorted_keys", "sorted_items")}
    for name in ("text", "ids.weight"):
        if name in state and len(state[name]) < num_items + 1:
            rows = state[name]
            state[name] = torch.cat([rows, rows.new_zeros((num_items + 1 - len(rows), rows.shape[1]))])
    return state
