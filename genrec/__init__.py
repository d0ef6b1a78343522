"""genrec: end-to-end generative recommendation (R3-VAE semantic IDs + constrained T5 decoding)."""

__version__ = "0.1.0"
