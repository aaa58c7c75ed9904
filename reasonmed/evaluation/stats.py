"""Confidence intervals small enough to write out, so the project needs no scipy.

Accuracy uses the Wilson score interval: unlike the normal ("Wald") interval it stays inside [0, 1]
and keeps close to its nominal coverage for small n and for accuracies near 0 or 1, which is
exactly where per-subset benchmark figures (MMLU subsets of ~100-270 items) live.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

Z95 = NormalDist().inv_cdf(0.975)  # 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for ``successes`` out of ``n`` (default 95%); (0, 0) for n == 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n (got {successes} of {n})")
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class MeanCI:
    n: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None

    @property
    def se(self) -> float | None:
        return None if self.sd is None or self.n < 2 else self.sd / math.sqrt(self.n)


def mean_interval(values: Sequence[float], z: float = Z95) -> MeanCI:
    """Mean with a normal-approximation interval (mean ± z·sd/√n): fine for the paper's 3,000-row samples;
    for samples under ~30 rows read it as rough. One value gives the mean and no interval."""
    n = len(values)
    if n == 0:
        return MeanCI(0, None, None, None, None)
    mean = math.fsum(values) / n
    if n == 1:
        return MeanCI(1, mean, None, None, None)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = z * sd / math.sqrt(n)
    return MeanCI(n, mean, sd, mean - half, mean + half)


def difference_interval(a: MeanCI, b: MeanCI, z: float = Z95) -> tuple[float, float, float] | None:
    """(b.mean - a.mean, low, high) for two independent samples (normal approximation, unpooled)."""
    if a.mean is None or b.mean is None or a.se is None or b.se is None:
        return None
    diff = b.mean - a.mean
    half = z * math.sqrt(a.se**2 + b.se**2)
    return diff, diff - half, diff + half
