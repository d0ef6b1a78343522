"""Token layout of the recommender — the single source of truth for offsets.

    0                      pad (also the decoder start token, as in T5)
    1                      eos (ends the encoder input)
    2 ..                   SID level 1 codes  (codebook_sizes[0] tokens)
    ..                     SID level 2 codes, ..., level L codes
    ..                     collision suffix    (suffix_size tokens)
    ..                     hashed user tokens  (num_user_buckets tokens, 0 = off)
    ..                     the anonymous-user token (only with user buckets): a history with no
                           known user, so it never shares a real user's bucket

Position d of a Semantic ID (0-based; d = L is the suffix) with local code c is token
``offsets[d] + c``. Every range is disjoint, so a token alone says which position it encodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genrec.recommender.trie import SidPrefixTable
from genrec.tokenizer.artifact import SemanticIds

PAD_TOKEN = 0
EOS_TOKEN = 1
FIRST_CODE_TOKEN = 2


@dataclass(frozen=True)
class SidVocab:
    position_sizes: tuple[int, ...]  # L codebook sizes + suffix size
    num_user_buckets: int = 0

    @property
    def sid_length(self) -> int:
        return len(self.position_sizes)

    @property
    def offsets(self) -> tuple[int, ...]:
        starts = np.cumsum((FIRST_CODE_TOKEN, *self.position_sizes[:-1]))
        return tuple(int(s) for s in starts)

    @property
    def user_offset(self) -> int:
        return FIRST_CODE_TOKEN + sum(self.position_sizes)

    @property
    def anonymous_user_token(self) -> int:
        return self.user_offset + self.num_user_buckets

    @property
    def vocab_size(self) -> int:
        return self.user_offset + self.num_user_buckets + (1 if self.num_user_buckets else 0)

    @classmethod
    def for_semantic_ids(cls, sids: SemanticIds, num_user_buckets: int = 0) -> "SidVocab":
        return cls(tuple(int(s) for s in sids.position_sizes), num_user_buckets)

    def item_tokens(self, codes: np.ndarray) -> np.ndarray:
        """Local SID codes [n, L + 1] -> token ids [n, L + 1]."""
        return np.asarray(codes, dtype=np.int64) + np.asarray(self.offsets, dtype=np.int64)[None, :]

    def token_codes(self, tokens: np.ndarray) -> np.ndarray:
        """Inverse of item_tokens."""
        return np.asarray(tokens, dtype=np.int64) - np.asarray(self.offsets, dtype=np.int64)[None, :]

    def user_token(self, user_id: int) -> int:
        """Hashed user token (TIGER's optional user id), only when num_user_buckets > 0; user 0
        (a history given without a user) gets the anonymous token."""
        if user_id <= 0:
            return self.anonymous_user_token
        return self.user_offset + (user_id * 2654435761 % 2**32) % self.num_user_buckets

    def prefix_table(self, codes: np.ndarray) -> SidPrefixTable:
        return SidPrefixTable.from_codes(codes, self.offsets, self.position_sizes)
