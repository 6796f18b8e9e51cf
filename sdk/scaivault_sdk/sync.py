"""``SyncScaiVaultClient``: the same API, blocking. It runs one ``ScaiVaultClient`` on a private event loop
in a daemon thread, so there is a single implementation of every call (no duplicated sync code path), and it
works from plain scripts as well as from inside another running event loop.

::

    with SyncScaiVaultClient("https://vault.example", token="skt_...") as vault:
        print(vault.secrets.read("app/db").data)
        for meta in vault.secrets.list(prefix="app/"):
            print(meta.path)
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar

from scaivault_sdk.client import ScaiVaultClient

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


class _Portal:
    """An event loop in a daemon thread; ``call`` runs a coroutine there and waits for its result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="scaivault-sdk", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def wrap(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, T]:
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            return await fn(*args, **kwargs)

        def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.run(call(*args, **kwargs))

        blocking.__doc__ = fn.__doc__
        blocking.__name__ = getattr(fn, "__name__", "call")
        return blocking

    def wrap_iter(self, fn: Callable[P, AsyncIterator[T]]) -> Callable[P, Iterator[T]]:
        def blocking(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
            agen = fn(*args, **kwargs)

            async def step() -> tuple[bool, T | None]:
                try:
                    return True, await agen.__anext__()
                except StopAsyncIteration:
                    return False, None

            def gen() -> Iterator[T]:
                try:
                    while True:
                        more, item = self.run(step())
                        if not more:
                            return
                        yield item  # type: ignore[misc]
                finally:
                    aclose = getattr(agen, "aclose", None)
                    if aclose is not None and self.loop.is_running():
                        self.run(aclose())

            return gen()

        blocking.__doc__ = fn.__doc__
        return blocking

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class _Sync(Generic[R]):
    """Base of the blocking resource views; ``_a`` is the async resource."""

    def __init__(self, portal: _Portal, resource: R) -> None:
        self._a = resource


class SyncSecrets(_Sync[Any]):
    def __init__(self, portal: _Portal, r: Any) -> None:
        super().__init__(portal, r)
        self.read = portal.wrap(r.read)
        self.read_metadata = portal.wrap(r.read_metadata)
        self.write = portal.wrap(r.write)
        self.update_metadata = portal.wrap(r.update_metadata)
        self.delete = portal.wrap(r.delete)
        self.restore = portal.wrap(r.restore)
        self.versions = portal.wrap(r.versions)
        self.rotate = portal.wrap(r.rotate)
        self.list = portal.wrap_iter(r.list)
        self.list_page = portal.wrap(r.list_page)
        self.expiring = portal.wrap_iter(r.expiring)
        self.batch_read = portal.wrap(r.batch_read)
        self.batch_metadata = portal.wrap(r.batch_metadata)


class SyncPolicies(_Sync[Any]):
    def __init__(self, portal: _Portal, r: Any) -> None:
        super().__init__(portal, r)
        self.list = portal.wrap_iter(r.list)
        for name in ("get", "create", "replace", "update", "delete", "bindings", "bind", "unbind", "test"):
            setattr(self, name, portal.wrap(getattr(r, name)))


class SyncAudit(_Sync[Any]):
    def __init__(self, portal: _Portal, r: Any) -> None:
        super().__init__(portal, r)
        self.logs = portal.wrap_iter(r.logs)
        self.export = portal.wrap_iter(r.export)
        self.tail = portal.wrap_iter(r.tail)
        for name in ("secret_trail", "identity_trail", "summary", "verify"):
            setattr(self, name, portal.wrap(getattr(r, name)))


def _generic(portal: _Portal, r: Any, iters: tuple[str, ...], calls: tuple[str, ...]) -> _Sync[Any]:
    view: _Sync[Any] = _Sync(portal, r)
    for name in iters:
        setattr(view, name, portal.wrap_iter(getattr(r, name)))
    for name in calls:
        setattr(view, name, portal.wrap(getattr(r, name)))
    return view


def _mirror(portal: _Portal, r: Any) -> _Sync[Any]:
    """A blocking view of ``r`` built from its methods: async generators become iterators, coroutines blocking
    calls, and nested resources (``pki.cas``) views of their own. Used for the lifecycle resources."""
    from scaivault_sdk.resources.base import Resource

    view: _Sync[Any] = _Sync(portal, r)
    for name in dir(type(r)):
        if name.startswith("_"):
            continue
        fn = getattr(type(r), name)
        if inspect.isasyncgenfunction(fn):
            setattr(view, name, portal.wrap_iter(getattr(r, name)))
        elif inspect.iscoroutinefunction(fn):
            setattr(view, name, portal.wrap(getattr(r, name)))
    for name, value in vars(r).items():
        if not name.startswith("_") and isinstance(value, Resource):
            setattr(view, name, _mirror(portal, value))
    return view


class SyncScaiVaultClient:
    """Blocking ScaiVault client; takes exactly the arguments of ``ScaiVaultClient``.

    Resources: ``secrets``, ``partner_secrets``, ``policies``, ``audit``, ``identity``, ``webhooks``,
    ``subscriptions``, ``auth``, ``pki``, ``acme``, ``dns_providers``, ``rotation``, ``dynamic``, ``leases``,
    ``federation``; each method has the async method's signature and returns its result
    (async iterators become plain iterators).
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        self._portal = _Portal()

        async def build() -> ScaiVaultClient:
            return ScaiVaultClient(url, **kwargs)

        try:
            self._client = self._portal.run(build())
        except BaseException:
            self._portal.close()
            raise
        c, p = self._client, self._portal
        self.cache = c.cache
        self.secrets = SyncSecrets(p, c.secrets)
        self.partner_secrets = SyncSecrets(p, c.partner_secrets)
        self.policies: Any = SyncPolicies(p, c.policies)
        self.audit: Any = SyncAudit(p, c.audit)
        self.identity: Any = _generic(p, c.identity, (), (
            "partners", "tenants", "users", "groups", "members", "resolve", "roles", "user_roles",
            "set_user_roles", "sync", "sync_status", "sync_history"))
        self.webhooks: Any = _generic(p, c.webhooks, ("list", "deliveries"),
                                      ("create", "get", "update", "delete", "test", "redeliver"))
        self.subscriptions: Any = _generic(p, c.subscriptions, ("list",),
                                           ("create", "get", "update", "delete", "poll", "ack"))
        self.auth: Any = _generic(p, c.auth, ("list_tokens",),
                                  ("whoami", "introspect", "create_token", "get_token", "revoke_token"))
        self.pki: Any = _mirror(p, c.pki)
        self.acme: Any = _mirror(p, c.acme)
        self.dns_providers: Any = _mirror(p, c.dns_providers)
        self.rotation: Any = _mirror(p, c.rotation)
        self.dynamic: Any = _mirror(p, c.dynamic)
        self.leases: Any = getattr(self.dynamic, "leases")  # noqa: B009 (set by _mirror)
        self.federation: Any = _mirror(p, c.federation)
        self.health = p.wrap(c.health)

    @classmethod
    def from_env(cls, **overrides: Any) -> SyncScaiVaultClient:
        """Like ``ScaiVaultClient.from_env``."""
        import os

        kwargs: dict[str, Any] = {"token": os.environ.get("SCAIVAULT_TOKEN") or None,
                                  "tenant_id": os.environ.get("SCAIVAULT_TENANT_ID") or None}
        kwargs.update(overrides)
        url = kwargs.pop("url", None) or os.environ.get("SCAIVAULT_URL", "")
        return cls(url, **kwargs)

    @property
    def base_url(self) -> str:
        return self._client.base_url

    def handle_event(self, event: Mapping[str, Any]) -> None:
        """Apply a webhook or subscription event to the read cache (thread-safe)."""
        self._client.handle_event(event)

    def close(self) -> None:
        if self._portal.loop.is_closed():
            return
        try:
            self._portal.run(self._client.aclose())
        finally:
            self._portal.close()

    def __enter__(self) -> SyncScaiVaultClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SyncScaiVaultClient(url={self.base_url!r})"
