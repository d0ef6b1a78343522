"""Names the CLI offers as ``choices``, spelled out here so that building the parser imports no torch.

The modules that define them (genrec.tokenizer.registry, genrec.recommender.encoder_input,
genrec.recommender.item_causal) import torch; tests/test_cli_startup.py checks that each list here
equals its source.
"""

TOKENIZER_METHODS = ("r3vae", "rqvae", "rkmeans", "vqvae", "opq")
DEFAULT_TOKENIZER_METHOD = "opq"  # = genrec.pipeline.TokenizerTrainingConfig.method
ENCODER_INPUTS = ("tokens", "items")
ENCODER_ATTENTION = ("bidirectional", "item_causal")
