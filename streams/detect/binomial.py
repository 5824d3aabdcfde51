"""The exact binomial upper tail P(X >= k | n, p) in log space, and the alert severity it gives (pure math)."""

from __future__ import annotations

import math
from typing import Literal

Severity = Literal["critical", "major", "minor", "normal"]

# Relative size under which further tail terms no longer change a double-precision sum.
_NEGLIGIBLE = math.log(1e-18)


def _log_pmf(i: int, n: int, log_p: float, log_q: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q


def _log_sum_outward(start: int, stop: int, step: int, n: int, log_p: float, log_q: float) -> float:
    """log of sum of pmf(i) for i from ``start`` towards ``stop`` (inclusive), away from the mode.

    The terms shrink monotonically moving away from the mode, so the loop stops once a term is negligible
    against the running sum; the sum is kept in log space (log-sum-exp) and never under- or overflows.
    """
    acc = _log_pmf(start, n, log_p, log_q)
    i = start + step
    while (i <= stop) if step > 0 else (i >= stop):
        term = _log_pmf(i, n, log_p, log_q)
        if term - acc < _NEGLIGIBLE:
            break
        hi, lo = (acc, term) if acc >= term else (term, acc)
        acc = hi + math.log1p(math.exp(lo - hi))
        i += step
    return acc


def binom_log_sf(k: int, n: int, p: float) -> float:
    """``log P(X >= k)`` for ``X ~ Binomial(n, p)``, exact to double precision (``-inf`` when impossible).

    The upper tail is summed directly when ``k`` lies above the mean (where small p-values live, so they
    keep full relative precision down to ~1e-300 and beyond in log space); below the mean it is
    ``1 - P(X <= k - 1)`` with the lower tail summed the same way.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0.0 <= p <= 1.0 or math.isnan(p):
        raise ValueError(f"p must lie in [0, 1], got {p}")
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    if k > n * p:
        return _log_sum_outward(k, n, 1, n, log_p, log_q)
    log_lower = _log_sum_outward(k - 1, 0, -1, n, log_p, log_q)
    return math.log1p(-min(1.0, math.exp(log_lower)))


def binom_sf(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``: the one-sided p-value of ``k`` negatives out of ``n``."""
    return math.exp(binom_log_sf(k, n, p))


def severity_of(p_value: float, alpha: float) -> Severity | None:
    """``critical`` under alpha/100, ``major`` under alpha/10, ``minor`` under alpha, else None."""
    if p_value < alpha / 100:
        return "critical"
    if p_value < alpha / 10:
        return "major"
    if p_value < alpha:
        return "minor"
    return None
