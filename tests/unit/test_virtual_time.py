"""The unit tests' own rules (conftest.py): virtual time unless a test opts out, and a test that
waits for real longer than 50 ms fails."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]


async def test_a_unit_test_runs_on_virtual_time() -> None:
    loop = asyncio.get_running_loop()
    started, real = loop.time(), time.perf_counter()
    await asyncio.sleep(3600)
    assert loop.time() - started == pytest.approx(3600)
    assert time.perf_counter() - real < 1.0


def test_a_test_that_sleeps_for_real_fails(tmp_path: Path) -> None:
    (tmp_path / "test_sleepy.py").write_text(
        textwrap.dedent(
            """
            import asyncio
            import time

            import pytest

            async def test_asyncio_sleep():
                await asyncio.sleep(0.06)

            async def test_a_timeout_that_expires():
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.06):
                        await asyncio.Event().wait()

            def test_time_sleep():
                time.sleep(0.06)

            async def test_a_short_sleep():
                await asyncio.sleep(0.01)

            async def test_a_timeout_that_does_not_expire():
                async with asyncio.timeout(10):
                    await asyncio.sleep(0)

            @pytest.mark.looptime
            async def test_on_virtual_time():
                await asyncio.sleep(3600)
            """
        )
    )
    # The unit tests' conftest as a plugin: outside tests/unit a test is on virtual time only
    # if marked, as a unit test that opts out with looptime(False) is on real time.
    options = ["-p", "tests.unit.conftest", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto"]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *options, str(tmp_path / "test_sleepy.py")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and "6 passed, 3 errors" in out.stdout, out.stdout + out.stderr
    # "ERROR path::name - reason": how much of the reason shows depends on the terminal width.
    errors = {
        line.rsplit("::", 1)[-1].split(" ", 1)[0]
        for line in out.stdout.splitlines()
        if line.startswith("ERROR")
    }
    assert errors == {"test_asyncio_sleep", "test_a_timeout_that_expires", "test_time_sleep"}
    assert "a unit test waited for real longer than 0.05 s" in out.stdout
