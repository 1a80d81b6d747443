"""The report's statistics: every top-1 a mean over seeds with a 95% interval, every comparison a
paired difference.

Two sources of noise, added in quadrature: the run-to-run spread (a Student-t interval over seeds)
and the sampling error of the test split, which every seed shares and so does not average out.
A gap between two models scored on the same test images takes the latter from the images on which
they disagree (:func:`paired_test_error`, McNemar), when both kept which images they got right.
Pure functions of numbers: no pandas, no file.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

REPRODUCED, NOT_REPRODUCED, CANNOT_TELL = "reproduced", "not reproduced", "cannot tell"


# Student's t, two-sided 95% (the 0.975 quantile), for 1..30 degrees of freedom (any statistics table).
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


Z975 = 1.959964  # the normal's 0.975 quantile


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom; past the table, its
    Cornish-Fisher expansion around the normal (2.042 at 30, exact to 3 decimals)."""
    if df <= len(T975):
        return T975[df - 1]
    z = Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


class PerSeed(dict):
    """{seed: top-1 %}, and in ``correct`` ({seed: bool array in the test split's order}) which test
    images each seed's model got right, where the stage kept it (:mod:`simclr.core.correctness`).
    A plain number is one run with no per-image record."""

    def __init__(self, values=(), correct: dict | None = None):
        super().__init__(values)
        self.correct = dict(correct or {})


def by_seed(values: PerSeed | float) -> dict:
    return dict(values) if isinstance(values, dict) else {0: float(values)}


_images_paired: ContextVar[bool] = ContextVar("images_paired", default=True)


@contextmanager
def independent_test_errors():
    """Within: every gap's test error as if its two top-1s had been scored on independent images
    (the per-image records ignored), the way the report reads gaps without them."""
    token = _images_paired.set(False)
    try:
        yield
    finally:
        _images_paired.reset(token)


def paired_test_error(a: PerSeed | float, b: PerSeed | float, seeds_a: list, seeds_b: list,
                      n: int) -> float | None:
    """Standard error, in points, of mean(a) − mean(b) over the n test images both were scored on.

    With D_i the correctness of image i averaged over a's seeds minus that averaged over b's, the
    difference of the two top-1s is the mean of the D_i, so its sampling error over images is
    sqrt(var(D) / n). With one seed a side, D_i is −1, 0 or +1 and this is McNemar's
    sqrt((p₁₀ + p₀₁ − (p₁₀ − p₀₁)²) / n): only the images on which the two disagree count. Models that
    agree on most images get a narrower interval than two independent binomials give; models whose
    errors fall on different images a wider one.

    Two pseudo-images, one each way (D = +1 and −1), are added before the variance is taken: with
    few discordant images the normal interval is too narrow, and with them a one-sided gap of k
    images is decided from k = 6 on at 1,000 images, where the exact McNemar test first gives
    p < 0.05 (k = 5: p = 0.063). With hundreds of discordant images they change nothing visible.

    None (read the two top-1s as independent) when either side lacks the record of a seed or a
    record is not of the n test images."""
    ca, cb = getattr(a, "correct", {}), getattr(b, "correct", {})
    if not _images_paired.get() or not all(s in ca for s in seeds_a) or not all(s in cb for s in seeds_b):
        return None
    if {len(ca[s]) for s in seeds_a} | {len(cb[s]) for s in seeds_b} != {n} or n < 2:
        return None
    d = (np.mean([ca[s] for s in seeds_a], axis=0, dtype=float)
         - np.mean([cb[s] for s in seeds_b], axis=0, dtype=float))
    d = np.concatenate([d, [1.0, -1.0]])
    return 100.0 * float(np.std(d, ddof=1)) / float(np.sqrt(n))


@dataclass(frozen=True)
class Estimate:
    """A top-1 (or a difference of two) over seeds: its mean and the half-width of its 95% interval.

    The interval adds in quadrature the run-to-run spread (t-interval of the per-seed values, when
    there are two seeds or more) and the sampling error of the test split, which every seed shares
    and so does not average out (for a difference, paired over images where it can be)."""

    mean: float
    half: float
    seeds: int

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.half:.1f}"

    @property
    def signed(self) -> str:
        """As a difference reads: the mean with its sign, ``+2.3 ± 1.5``."""
        return f"{self.mean:+.1f} ± {self.half:.1f}"

    @property
    def verdict(self) -> str:
        """For a difference a − b: a > b beyond the interval, a < b beyond it, or cannot tell."""
        if self.mean - self.half > 0:
            return REPRODUCED
        return NOT_REPRODUCED if self.mean + self.half < 0 else CANNOT_TELL


def seed_half_width(values: list[float]) -> float:
    """Half-width of the 95% t-interval of the mean of per-seed values (0 with one seed)."""
    if len(values) < 2:
        return 0.0
    return t975(len(values) - 1) * float(np.std(values, ddof=1)) / float(np.sqrt(len(values)))


def estimate(values: PerSeed | float, n: int) -> Estimate:
    """Mean top-1 over seeds with its 95% interval (seed spread and the test error of n images)."""
    v = list(by_seed(values).values())
    mean = float(np.mean(v))
    return Estimate(mean, float(np.hypot(seed_half_width(v), Z975 * standard_error(mean, n))), len(v))


def paired_gap(a: PerSeed | float, b: PerSeed | float, n: int) -> Estimate:
    """a − b paired by seed (the same seed at two points shares subset, init and order) with its 95%
    interval: the t-interval of the per-seed differences and the test error of the difference.
    Seeds only one side ran are left out. A plain number (one run of another kind, e.g. the main
    run) or no seed in common: the means are compared, each with its own spread over seeds.

    The test error is paired over images (:func:`paired_test_error`) when both sides kept which
    test images each seed got right; otherwise the two top-1s' binomial errors of n images are
    combined as if independent, which overstates it for models that agree on most images."""
    paired = isinstance(a, dict) and isinstance(b, dict) and bool(a.keys() & b.keys())
    va, vb = by_seed(a), by_seed(b)
    if paired:
        seeds_a = seeds_b = sorted(va.keys() & vb.keys())
        diffs = [va[s] - vb[s] for s in seeds_a]
        spread = seed_half_width(diffs)
    else:
        seeds_a, seeds_b = sorted(va), sorted(vb)
        diffs = [float(np.mean(list(va.values())) - np.mean(list(vb.values())))]
        spread = float(np.hypot(seed_half_width(list(va.values())), seed_half_width(list(vb.values()))))
    ma, mb = float(np.mean([va[s] for s in seeds_a])), float(np.mean([vb[s] for s in seeds_b]))
    se = paired_test_error(a, b, seeds_a, seeds_b, n)
    if se is None:
        se = float(np.hypot(standard_error(ma, n), standard_error(mb, n)))
    return Estimate(float(np.mean(diffs)), float(np.hypot(spread, Z975 * se)), len(diffs) if paired else 1)


def combined_verdict(verdicts: list[str]) -> str:
    """Several gaps of one finding: reproduced only if every one is; any reversed beyond noise, not."""
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    return NOT_REPRODUCED if NOT_REPRODUCED in verdicts else CANNOT_TELL


def standard_error(top1: float, n: int) -> float:
    """Binomial standard error of a top-1 (%) measured on n test images, in points."""
    p = min(max(top1 / 100.0, 1e-3), 1 - 1e-3)
    return 100.0 * float(np.sqrt(p * (1 - p) / max(n, 1)))
