"""Paired differences over seeds with a Student-t confidence interval.

A study runs every variant with the same seeds 0..N-1, so variant B's seed-k run and variant A's
seed-k run share the seed-dependent parts (recommender initialisation, batch order, validation
sample). The difference per seed, d_k = B_k - A_k, removes what the pair shares; its mean with
the interval mean +- t(1 - (1 - level) / 2, n - 1) * sd(d) / sqrt(n) says whether B differs from A
beyond seed noise (the interval excludes 0) or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedDifference:
    n: int  # seeds present in both
    mean: float  # mean of B_k - A_k
    low: float  # interval bounds (NaN with fewer than 2 pairs: no spread to estimate)
    high: float
    relative: float  # mean / mean(A): the difference as a share of the reference (NaN if mean(A) is 0)

    @property
    def beyond_noise(self) -> bool:
        """The interval excludes zero."""
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "low": self.low, "high": self.high,
                "relative": self.relative, "beyond_noise": self.beyond_noise}


def paired_difference(reference: dict[int, float], other: dict[int, float], level: float = 0.95) -> PairedDifference:
    """``other - reference`` over the seeds (dict keys) both have, with a two-sided ``level`` t-interval."""
    from scipy.stats import t

    seeds = sorted(set(reference) & set(other))
    if not seeds:
        nan = float("nan")
        return PairedDifference(0, nan, nan, nan, nan)
    a = np.asarray([reference[s] for s in seeds], dtype=np.float64)
    d = np.asarray([other[s] for s in seeds], dtype=np.float64) - a
    mean = float(d.mean())
    if len(d) >= 2:
        half = float(t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
        low, high = mean - half, mean + half
    else:
        low = high = float("nan")
    base = float(a.mean())
    return PairedDifference(len(d), mean, low, high, mean / base if base != 0 else float("nan"))
