"""A logistic-regression scorer in plain numpy, fit on synthetic data (no downloads)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_FEATURES = 20


def make_dataset(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic binary classification data: labels drawn from a known logistic model."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    true_w = rng.normal(size=N_FEATURES)
    p = 1.0 / (1.0 + np.exp(-(x @ true_w + 0.5)))
    y = (rng.random(n) < p).astype(np.float64)
    return x, y


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic function


@dataclass
class LogisticScorer:
    """Standardise the features, then p = sigmoid(x @ w + b)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    @classmethod
    def fit(
        cls, x: np.ndarray, y: np.ndarray, *, epochs: int = 300, lr: float = 0.5, l2: float = 1e-3
    ) -> LogisticScorer:
        """Full-batch gradient descent on the L2-regularised log loss."""
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-12
        z = (x - mean) / scale
        w, b = np.zeros(x.shape[1]), 0.0
        for _ in range(epochs):
            err = _sigmoid(z @ w + b) - y
            w -= lr * (z.T @ err / len(y) + l2 * w)
            b -= lr * float(err.mean())
        return cls(mean, scale, w, b)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(y = 1) for each row of `x`."""
        return _sigmoid(((x - self.mean) / self.scale) @ self.weights + self.bias)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        return float(((self.predict_proba(x) >= 0.5) == (y == 1.0)).mean())
