"""A runtime that serves one request at a time, 20 ms each (it blocks its worker's event
loop): 50 requests/s at most, for the open loop beyond capacity."""

import time

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse

SERVICE_S = 0.02


class Steady(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        time.sleep(SERVICE_S)  # blocking on purpose: requests queue behind it
        return InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("output-0", x)]
        )
