"""A text embedder: hashed bag-of-words features -> MLP -> L2-normalised embedding."""

from __future__ import annotations

import zlib

import torch
from torch import nn

N_FEATURES = 256
HIDDEN = 512
EMBEDDING_DIM = 128


def featurize(texts: list[str]) -> torch.Tensor:
    """Hash each text's lower-cased tokens into `N_FEATURES` buckets (counts, L1-normalised)."""
    features = torch.zeros(len(texts), N_FEATURES)
    for row, text in enumerate(texts):
        tokens = text.lower().split()
        for token in tokens:
            features[row, zlib.crc32(token.encode()) % N_FEATURES] += 1.0
        if tokens:
            features[row] /= len(tokens)
    return features


class TextEmbedder(nn.Module):
    """256 -> 512 -> 128 MLP; rows of the output have unit L2 norm."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(N_FEATURES, HIDDEN),
            nn.ReLU(),
            nn.Linear(HIDDEN, EMBEDDING_DIM),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.net(features), dim=-1)


def build_embedder(seed: int = 0) -> TextEmbedder:
    """A deterministic, randomly initialised embedder, ready for inference."""
    torch.manual_seed(seed)
    return TextEmbedder().eval()
