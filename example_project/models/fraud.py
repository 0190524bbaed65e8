"""A card-transaction fraud detector: gradient-boosted trees (scikit-learn) on 9 features.

The light model of this repository. A hundred shallow trees score a transaction in well
under a millisecond on one CPU core: the kind of model that does not need a GPU, served
by several single-threaded worker processes (tests/test_fraud.py measures both).

The model is trained when this module is imported, from synthetic transactions drawn with
a fixed seed (no downloads, about 0.1 s), the way a serving process loads its model once
at start-up; so every process that imports it, a spawned serving worker included, holds
the same model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

FEATURES = (
    "log_amount",
    "hour_sin",
    "hour_cos",
    "merchant_risk",
    "log1p_distance_km",
    "transactions_24h",
    "foreign",
    "online",
    "new_device",
)
N_FEATURES = len(FEATURES)


def make_transactions(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` synthetic transactions (float64, (n, 9)) and their fraud labels (0/1, about 10%
    fraud), drawn from a known logistic model of the raw fields."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.5, 1.0, n)
    hour = rng.integers(0, 24, n)
    merchant_risk = rng.beta(2, 8, n)
    distance_km = rng.exponential(20.0, n)
    transactions_24h = rng.poisson(3, n)
    foreign = rng.random(n) < 0.1
    online = rng.random(n) < 0.4
    new_device = rng.random(n) < 0.05
    logit = (
        -5.0
        + 0.8 * np.log(amount / 50.0)
        + 4.0 * merchant_risk
        + 1.5 * foreign
        + 1.0 * (hour < 6)
        + 2.0 * new_device
        + 0.02 * distance_km
        + 0.2 * transactions_24h
        + 1.0 * (online & foreign)  # card-not-present abroad: riskier than either alone
    )
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    angle = 2.0 * np.pi * hour / 24.0
    x = np.column_stack(
        [
            np.log(amount),
            np.sin(angle),
            np.cos(angle),
            merchant_risk,
            np.log1p(distance_km),
            transactions_24h,
            foreign,
            online,
            new_device,
        ]
    ).astype(np.float64)
    return x, y


def train(seed: int = 0, n: int = 5000) -> HistGradientBoostingClassifier:
    """100 trees of at most 15 leaves; no early stopping, so the model is the same on
    every machine for a given seed."""
    x, y = make_transactions(n, seed)
    model = HistGradientBoostingClassifier(
        max_iter=100, max_leaf_nodes=15, early_stopping=False, random_state=seed
    )
    return model.fit(x, y)


DETECTOR = train()


def fraud_probability(transactions: np.ndarray) -> np.ndarray:
    """P(fraud) for each row of `transactions`, shape (n, 9) -> (n,)."""
    if transactions.ndim != 2 or transactions.shape[1] != N_FEATURES:
        raise ValueError(
            f"expected transactions of shape (n, {N_FEATURES}), got {transactions.shape}"
        )
    return DETECTOR.predict_proba(transactions)[:, 1]


def serving_model() -> Callable[[np.ndarray], np.ndarray]:
    """The worker factory for `worker_pool`: a module-level function, so spawned worker
    processes can unpickle it; each worker imports this module (training its copy of the
    model) and serves `fraud_probability`."""
    return fraud_probability
