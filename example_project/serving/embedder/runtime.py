"""MLServer runtime serving the example's text embedder (models/embedder.py).

MLServer imports this module with this folder on sys.path; the example project's root,
where `models` lives, is put there too, relative to this file.

The request's first input is either the query texts, BYTES [n] (featurized here, as a
search service does), or their hashed bag-of-words features, FP32 [n, 256]; the
response's one output, `embedding`, is the unit-norm embeddings, FP32 [n, 128]. Each
parallel worker builds its own copy of the model (the same seed, so the same weights),
and torch sizes its thread pool from the OMP_NUM_THREADS of the worker's environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse

_PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(_PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(_PROJECT_ROOT))

from models.embedder import N_FEATURES, build_embedder, featurize  # noqa: E402


class EmbedderRuntime(MLModel):
    """texts [n] or features [n, 256] -> embeddings [n, 128], under inference mode."""

    async def load(self) -> bool:
        self._model = build_embedder(seed=0)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        request_input = payload.inputs[0]
        with torch.inference_mode():
            if request_input.datatype == "BYTES":
                features = featurize(StringCodec.decode_input(request_input))
            else:
                array = NumpyCodec.decode_input(request_input)
                if array.ndim != 2 or array.shape[1] != N_FEATURES:
                    shape = list(array.shape)
                    raise InferenceError(
                        f"expected texts (BYTES [n]) or features (FP32 [n, {N_FEATURES}]),"
                        f" got {request_input.datatype} {shape}"
                    )
                features = torch.from_numpy(np.ascontiguousarray(array, np.float32))
            embeddings = self._model(features)
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("embedding", embeddings.numpy())],
        )
