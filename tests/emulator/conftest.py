"""Fixtures: a two-modem emulated network and raw PTY clients with echo off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modem.emulator import EmulatorPool
from tests.emulator.ptyclient import PtyClient, client


@pytest.fixture
def pool() -> Iterator[EmulatorPool]:
    with EmulatorPool(2, seed=1) as p:
        yield p


@pytest.fixture
def a(pool: EmulatorPool) -> Iterator[PtyClient]:
    with client(pool, 0) as c:
        yield c


@pytest.fixture
def b(pool: EmulatorPool) -> Iterator[PtyClient]:
    with client(pool, 1) as c:
        yield c
