"""The models this example repository serves.

- `models.embedder`: a torch MLP that maps 256 hashed text features to a 128-d embedding.
- `models.classifier`: a small torch CNN that classifies 3x32x32 images into 10 classes.
- `models.scorer`: a numpy logistic-regression scorer, fit on synthetic data.
- `models.fraud`: a scikit-learn gradient-boosted-trees fraud detector, trained at import
  on synthetic transactions.

Each model lives in its own module, so that importing this package (and the numpy
scorer) needs neither torch nor scikit-learn.
"""
