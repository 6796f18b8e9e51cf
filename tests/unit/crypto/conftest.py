"""Shared fixtures for crypto unit tests: a local KMS and a call-counting wrapper around it."""

from __future__ import annotations

import asyncio

import pytest

from crypto import aead
from crypto.keyring import InMemoryKeyStore, KeyHierarchy
from crypto.kms import KmsProvider, LocalKms


class CountingKms:
    """Delegates to a real provider and counts calls; ``delay`` makes unwraps yield to the loop."""

    def __init__(self, inner: KmsProvider, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.wraps = 0
        self.unwraps = 0

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def key_id(self) -> str:
        return self.inner.key_id

    @property
    def calls(self) -> int:
        return self.wraps + self.unwraps

    async def wrap(self, plaintext: bytes, context: dict[str, str]) -> bytes:
        self.wraps += 1
        return await self.inner.wrap(plaintext, context)

    async def unwrap(self, blob: bytes, context: dict[str, str]) -> bytes:
        self.unwraps += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return await self.inner.unwrap(blob, context)

    async def health(self) -> None:
        await self.inner.health()


@pytest.fixture
def root_key() -> bytes:
    return aead.new_key()


@pytest.fixture
def kms(root_key: bytes) -> CountingKms:
    return CountingKms(LocalKms(root_key))


@pytest.fixture
def store() -> InMemoryKeyStore:
    return InMemoryKeyStore()


@pytest.fixture
def hierarchy(kms: CountingKms, store: InMemoryKeyStore) -> KeyHierarchy:
    return KeyHierarchy(kms, store, cache_ttl_seconds=300)
