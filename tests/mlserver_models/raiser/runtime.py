"""A runtime whose predict raises: the request fails with HTTP 500."""

from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse


class Broken(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        raise ValueError("boom: the model cannot serve this input")
