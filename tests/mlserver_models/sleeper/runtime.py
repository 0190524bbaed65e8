"""A runtime whose predict hangs (for the request timeout)."""

import asyncio

from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse


class Broken(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")
