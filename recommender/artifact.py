"""The trained recommender artifact: a ``from_pretrained`` directory bundled with its tokenizer.

    OUT/config.json, model.safetensors   the T5 model (T5ForConditionalGeneration.from_pretrained(OUT))
    OUT/tokenizer/semantic_ids.npy, config.json   a copy of the tokenizer's SIDs it was trained on
    OUT/genrec.json                      dataset path, tokenizer checksum, training and eval settings
    OUT/metrics.jsonl, training_curves.png  the training log
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from transformers import T5ForConditionalGeneration
from transformers.utils import logging as transformers_logging

from genrec.core.errors import GenrecError
from genrec.core.io import read_json
from genrec.recommender.model import RecommenderConfig
from genrec.recommender.vocab import SidVocab
from genrec.tokenizer.artifact import CONFIG_FILE, SEMANTIC_IDS_FILE, SemanticIds, load_semantic_ids

META_FILE = "genrec.json"
TOKENIZER_COPY = "tokenizer"


def copy_tokenizer(sids: SemanticIds, out: Path) -> None:
    target = out / TOKENIZER_COPY
    target.mkdir(parents=True, exist_ok=True)
    for name in (SEMANTIC_IDS_FILE, CONFIG_FILE):
        shutil.copy2(sids.path / name, target / name)


@dataclass
class LoadedRecommender:
    model: T5ForConditionalGeneration
    sids: SemanticIds
    vocab: SidVocab
    config: RecommenderConfig
    meta: dict
    path: Path


def load_recommender(path: str | Path, tokenizer: str | Path | None = None, device: str = "cpu") -> LoadedRecommender:
    """Load model + bundled SIDs. If ``tokenizer`` is given it must be the one trained on."""
    path = Path(path)
    if not (path / META_FILE).is_file() or not (path / "config.json").is_file():
        raise GenrecError(f"{path}: not a trained recommender (no {META_FILE}); run `genrec train-recommender` first")
    meta = read_json(path / META_FILE)
    sids = load_semantic_ids(path / TOKENIZER_COPY)
    if sids.checksum != meta["tokenizer_checksum"]:
        raise GenrecError(f"{path}: bundled tokenizer does not match the checksum recorded at training time")
    if tokenizer is not None:
        other = load_semantic_ids(tokenizer)
        if other.checksum != meta["tokenizer_checksum"]:
            raise GenrecError(
                f"tokenizer {tokenizer} is not the one this recommender was trained on "
                f"(SID checksum {other.checksum[:12]} != {meta['tokenizer_checksum'][:12]}); retrain the recommender "
                "or pass the matching tokenizer"
            )
    transformers_logging.disable_progress_bar()  # a "Loading weights" bar for a 10 MB model is noise
    model = T5ForConditionalGeneration.from_pretrained(path).to(device).eval()
    config = RecommenderConfig(**model.config.genrec["recommender"])
    vocab = SidVocab.for_semantic_ids(sids, config.num_user_buckets)
    if vocab.vocab_size != model.config.vocab_size:
        raise GenrecError(f"{path}: model vocabulary ({model.config.vocab_size}) does not fit its SIDs ({vocab.vocab_size})")
    return LoadedRecommender(model, sids, vocab, config, meta, path)
