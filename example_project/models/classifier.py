"""A small image classifier: two conv blocks and a linear head over 3x32x32 images."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

N_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)

# Per-channel statistics the images are normalised with (CIFAR-10's, a common choice).
_MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
_STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def preprocess(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, 32, 32, 3), as decoded from a request -> normalised float NCHW."""
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images of shape (N, 32, 32, 3), got {images.shape}")
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - _MEAN) / _STD


class ImageClassifier(nn.Module):
    """conv(3->16) -> pool -> conv(16->32) -> pool -> linear(2048->10); outputs logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(32 * 8 * 8, N_CLASSES)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).flatten(1))

    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities, (N, 10), rows summing to 1."""
        return self.forward(images).softmax(dim=-1)


def build_classifier(seed: int = 0) -> ImageClassifier:
    """A deterministic, randomly initialised classifier, ready for inference."""
    torch.manual_seed(seed)
    return ImageClassifier().eval()


def random_images(n: int, seed: int = 0) -> np.ndarray:
    """Synthetic uint8 images (N, 32, 32, 3), as a request would carry them."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
