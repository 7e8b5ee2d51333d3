"""Statistics over seeds: 95% percentile-bootstrap intervals of means and of paired differences.

The seeds of an experiment are its repetitions: each seed draws its own splits and initial
model, and every line (strategy) of one seed shares them. Intervals resample seeds with
replacement; a comparison of two lines resamples the seeds they share, the same seeds for both
(a paired bootstrap), so what the two lines have in common does not count as noise.
"""

from collections.abc import Callable

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95


def resampled_seeds(count: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """int Array[resamples, count]: for each bootstrap resample, the positions of the seeds it
    draws (with replacement). Seeded: a summary is the same every time it is made."""
    return np.random.default_rng(seed).integers(0, count, size=(resamples, count))


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The central ``LEVEL`` interval of bootstrap ``values`` (inf allowed: 'never')."""
    tail = 100 * (1 - LEVEL) / 2  # the outer order statistics: no interpolation, which inf would turn into NaN
    return float(np.percentile(values, tail, method="lower")), float(np.percentile(values, 100 - tail, method="higher"))


def mean_interval(per_seed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the mean over seeds of ``per_seed`` (Array[seeds, ...]), elementwise over
    the trailing dims; a single seed gives a zero-width interval at its value."""
    means = per_seed[resampled_seeds(per_seed.shape[0])].mean(1)  # [resamples, ...]
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return low, high


def bootstrap(statistic: Callable[[np.ndarray], float], count: int) -> tuple[float, float]:
    """The interval of ``statistic(positions)`` over bootstrap resamples of ``count`` seeds
    (``statistic`` maps an int Array[count] of seed positions to a number, inf for 'never')."""
    return percentile_interval(np.array([statistic(rows) for rows in resampled_seeds(count)]))


def paired_difference(ours: np.ndarray, theirs: np.ndarray) -> dict:
    """Per-seed ``ours − theirs`` (Array[seeds], the same seeds in the same order): the wins,
    ties and losses, the mean difference and its paired-bootstrap interval."""
    difference = ours - theirs
    low, high = mean_interval(difference)
    return {
        "seeds": int(difference.size), "wins": int((difference > 0).sum()), "ties": int((difference == 0).sum()),
        "losses": int((difference < 0).sum()), "mean": round(float(difference.mean()), 4),
        "low": round(float(low), 4), "high": round(float(high), 4),
    }  # fmt: skip
