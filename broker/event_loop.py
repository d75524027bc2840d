"""Choose the broker's event loop: uvloop when installed, otherwise asyncio's default."""

from __future__ import annotations

import asyncio
import os

# Environment variable that, set to 1, runs the broker on asyncio's default event loop
# even where uvloop is installed.
NO_UVLOOP_VARIABLE = "POOLMIGRATE_NO_UVLOOP"


def new_event_loop() -> asyncio.AbstractEventLoop:
    """Create a uvloop event loop, or asyncio's default one without uvloop or with NO_UVLOOP_VARIABLE set."""
    if os.environ.get(NO_UVLOOP_VARIABLE, "").strip() not in ("", "0"):
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def event_loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """Return "uvloop" for a uvloop loop and "asyncio" for any other."""
    return "uvloop" if type(loop).__module__.partition(".")[0] == "uvloop" else "asyncio"
