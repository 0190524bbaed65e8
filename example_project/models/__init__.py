"""The models this example repository serves.

- `models.embedder`: a torch MLP that maps 256 hashed text features to a 128-d embedding.
- `models.classifier`: a small torch CNN that classifies 3x32x32 images into 10 classes.
- `models.scorer`: a numpy logistic-regression scorer, fit on synthetic data.

The torch models live in their own modules, so that importing this package (and the
numpy scorer) does not need torch.
"""
