"""A runtime that ignores the thread count it is given: each request is computed by 3
threads of its own pool at once (numpy's matrix product releases the GIL), whatever
OMP_NUM_THREADS says, as a model with a hard-coded thread pool would. Declared 1 worker
x 1 thread, it keeps 3 threads busy: the observed oversubscription gate's case."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

THREADS = 3


def _work(seed: int) -> float:
    a = np.random.default_rng(seed).random((256, 256))
    for _ in range(12):
        a = np.tanh(a @ a / 256.0)
    return float(a.sum())


class Greedy(MLModel):
    async def load(self) -> bool:
        self._pool = ThreadPoolExecutor(THREADS)  # the same threads serve every request
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        sums = list(self._pool.map(_work, range(THREADS)))
        y = x + np.float32(sum(sums) * 0)
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("output-0", y)]
        )
