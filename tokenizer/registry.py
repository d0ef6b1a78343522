"""The tokenizer methods by name: the one list of method names, and building / loading by name.

The method modules import tokenizer.base; this module imports the method modules (never the
reverse), so the CLI, the pipeline and the benchmarks take their choices from ``METHODS`` here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genrec.core.config import apply_overrides
from genrec.core.errors import GenrecError
from genrec.core.io import read_json
from genrec.tokenizer.base import CONFIG_FILE, WEIGHTS_FILE, Tokenizer, TokenizerConfig
from genrec.tokenizer.opq import OPQTokenizer
from genrec.tokenizer.r3vae import R3VAETokenizer
from genrec.tokenizer.rkmeans import RKMeansTokenizer
from genrec.tokenizer.rqvae import RQVAETokenizer, VQVAETokenizer

TOKENIZERS: dict[str, type[Tokenizer]] = {
    cls.method: cls for cls in (R3VAETokenizer, RQVAETokenizer, RKMeansTokenizer, VQVAETokenizer, OPQTokenizer)
}
METHODS: tuple[str, ...] = tuple(TOKENIZERS)


def method_config(method: str, fields: dict[str, Any] | None = None) -> TokenizerConfig:
    """``method``'s config dataclass with ``fields`` on top (a config file's or flags' values; an
    unknown key is an error), validated."""
    if method not in TOKENIZERS:
        raise GenrecError(f"unknown tokenizer method {method!r}; choose from {', '.join(METHODS)}")
    config = apply_overrides(TOKENIZERS[method].config_class(), dict(fields or {}), source=f"{method} options")
    config.validate()
    return config


def build_tokenizer(method: str, config: TokenizerConfig | dict[str, Any] | None = None) -> Tokenizer:
    """A fresh tokenizer of ``method`` with ``config``: the method's config dataclass, or fields over
    its defaults (``method_config``)."""
    if not isinstance(config, TokenizerConfig):
        config = method_config(method, config)
    elif type(config) is not TOKENIZERS[method].config_class:
        raise GenrecError(f"{method} takes a {TOKENIZERS[method].config_class.__name__}, not a {type(config).__name__}")
    config.validate()
    return TOKENIZERS[method](config)


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """The tokenizer that ``Tokenizer.save`` wrote to ``folder`` (its method is read from config.json)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not folder.is_dir():
        raise GenrecError(f"{folder}: tokenizer directory not found; run `genrec train-tokenizer` first")
    if not (folder / WEIGHTS_FILE).is_file():
        raise GenrecError(f"{folder}: no {WEIGHTS_FILE}; not a trained tokenizer")
    info = read_json(folder / CONFIG_FILE)
    tok = build_tokenizer(info["method"], info.get("method_config", {}))
    tok.embedding_dim = int(info["embedding_dim"])
    tok.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
    return tok
