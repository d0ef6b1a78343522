"""The tokenizer study (``genrec compare``): every tokenizer, on the same input, through the same
recommender recipe, over several seeds (R3-VAE paper Tables 1, 7, 8, 9).

* ``config``: the study config (one typed dataclass, read from one JSON file) and its variants;
* ``runs``: one run = (variant, seed): tokenizer -> recommender -> fused-decoding choice -> test,
  resumable, one process per job;
* ``report``: means over seeds, paired differences against R3-VAE, Spearman of the SID metrics with
  Recall@10, validation curves, plots; JSON + markdown.

This package's ``__init__`` imports nothing, so ``genrec compare --help`` (which documents the
config from ``config``) stays free of torch.
"""
