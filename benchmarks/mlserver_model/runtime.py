"""MLServer runtime for benchmarks/serving.py: the torch MLP of benchmarks/workers.py
(`_models.make_mlp`, batch 32, 512 -> 1024 -> 512), served as that script's worker pool
serves it: the request's first input is the batch, FP32 [32, 512], the response one
FP32 [1], the sum of the outputs (a small reply, as the pool's workers send back).

MLServer imports this module with this folder on sys.path; benchmarks/, where _models
lives, is put there too, relative to this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

_BENCHMARKS = Path(__file__).resolve().parents[1]
if str(_BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(_BENCHMARKS))

import _models  # noqa: E402


class MlpRuntime(MLModel):
    async def load(self) -> bool:
        self._serve = _models.make_mlp()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        batch = NumpyCodec.decode_input(payload.inputs[0])
        total = self._serve(torch.from_numpy(np.ascontiguousarray(batch, np.float32)))
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("sum", np.array([total], np.float32))],
        )
