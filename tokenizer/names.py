"""The tokenizer methods' names, without importing them (no torch): what the CLI offers.
``genrec.tokenizer.registry`` maps each to its class (tests/test_cli.py checks they agree)."""

METHODS: tuple[str, ...] = ("r3vae", "rqvae", "rkmeans", "vqvae", "opq")
