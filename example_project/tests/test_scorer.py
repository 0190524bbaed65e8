"""The logistic-regression scorer (numpy only: runs without torch)."""

from __future__ import annotations

import numpy as np
import pytest
from models.scorer import N_FEATURES, LogisticScorer, make_dataset

TOP_K = 10


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(n=4000, seed=0)


@pytest.fixture(scope="module")
def scorer(dataset):
    x, y = dataset
    return LogisticScorer.fit(x[:3000], y[:3000])


def test_scorer_quality(scorer, dataset):
    """Not a performance test: the fitted model is good enough to serve."""
    x, y = dataset
    assert scorer.accuracy(x[3000:], y[3000:]) >= 0.8


@pytest.mark.latency(ms=10, percentile=99)
def test_rank_candidates_latency(hwperf, scorer):
    """One ranking request: score 1,000 candidates and return the top 10."""
    candidates = np.random.default_rng(1).normal(size=(1000, N_FEATURES))

    def rank(rows):
        probs = scorer.predict_proba(rows)
        top = np.argsort(-probs)[:TOP_K]
        return top, probs[top]

    top, scores = hwperf(rank, candidates, name="rank-1000")

    assert top.shape == (TOP_K,)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert (np.diff(scores) <= 0).all()


@pytest.mark.throughput(min_per_s=1_000_000, batch_size=10_000)
def test_batch_scoring_throughput(hwperf, scorer):
    """Nightly batch scoring: 10,000 rows per call."""
    rows = np.random.default_rng(2).normal(size=(10_000, N_FEATURES))
    probs = hwperf(scorer.predict_proba, rows, name="score-10k")

    assert probs.shape == (10_000,)
    assert ((probs >= 0) & (probs <= 1)).all()
