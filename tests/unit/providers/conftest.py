from collections.abc import AsyncIterator

import pytest

from inferenceops_emulator import Emulator

from .support import TOKEN


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(token=TOKEN) as emulator:
        yield emulator
