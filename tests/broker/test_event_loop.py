"""Choice of the broker's event loop: uvloop when installed, asyncio's default with POOLMIGRATE_NO_UVLOOP=1."""

from __future__ import annotations

import asyncio
import sys
import types

import pytest

from broker import server


class FakeUvloopLoop(asyncio.SelectorEventLoop):
    """An asyncio loop that a fake uvloop module hands out, so no real uvloop is needed."""


FakeUvloopLoop.__module__ = "uvloop"


@pytest.fixture
def fake_uvloop(monkeypatch):
    module = types.ModuleType("uvloop")
    module.new_event_loop = FakeUvloopLoop
    monkeypatch.setitem(sys.modules, "uvloop", module)
    return module


@pytest.mark.parametrize("value", ["", "0"])
def test_new_loop_uses_installed_uvloop(fake_uvloop, monkeypatch, value):
    monkeypatch.setenv(server.NO_UVLOOP_VARIABLE, value)
    loop = server.new_event_loop()
    try:
        assert isinstance(loop, FakeUvloopLoop)
        assert server.event_loop_name(loop) == "uvloop"
    finally:
        loop.close()


@pytest.mark.parametrize("value", ["1", "yes"])
def test_new_loop_honours_no_uvloop_variable(fake_uvloop, monkeypatch, value):
    monkeypatch.setenv(server.NO_UVLOOP_VARIABLE, value)
    loop = server.new_event_loop()
    try:
        assert not isinstance(loop, FakeUvloopLoop)
        assert server.event_loop_name(loop) == "asyncio"
    finally:
        loop.close()


def test_new_loop_without_uvloop_is_asyncio(monkeypatch):
    monkeypatch.delenv(server.NO_UVLOOP_VARIABLE, raising=False)
    # None in sys.modules makes `import uvloop` raise ImportError.
    monkeypatch.setitem(sys.modules, "uvloop", None)
    loop = server.new_event_loop()
    try:
        assert server.event_loop_name(loop) == "asyncio"
    finally:
        loop.close()


@pytest.mark.bundled_only
def test_listening_line_names_event_loop(launcher, monkeypatch):
    monkeypatch.setenv(server.NO_UVLOOP_VARIABLE, "1")
    broker = launcher.start()

    broker.wait_for_log(r" INFO .*Listening on .*; event loop asyncio\.$")
