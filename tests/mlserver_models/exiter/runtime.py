"""A runtime whose predict ends its worker process."""

import os

from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse


class Broken(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        os._exit(3)
