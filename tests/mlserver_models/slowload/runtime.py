"""A runtime whose load takes far longer than a test's start_timeout_s."""

import asyncio

from mlserver import MLModel


class Broken(MLModel):
    async def load(self) -> bool:
        await asyncio.sleep(3600)
        return True
