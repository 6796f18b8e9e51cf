"""What every federated backend adapter offers (``vault.VaultRemote``, ``aws_sm.AsmRemote``), and the one
exception tree their failures map to. Messages never carry a credential or a secret value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

Kind = Literal["unavailable", "rate_limited", "auth", "not_found", "invalid"]


class RemoteError(Exception):
    """A remote call failed. ``kind`` decides the API error and the sync's reaction (back off, report)."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind: Kind = kind
        self.message = message


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    key: str                # the remote key (Vault: "<mount>/<path>", ASM: the secret name)
    version: str | None     # the remote version id when the listing tells it (ASM), else None (Vault)


class Remote(Protocol):
    async def list_keys(self, prefix: str) -> list[RemoteEntry]: ...

    async def version(self, key: str) -> str | None: ...

    async def versions(self, keys: list[str]) -> dict[str, str | None]: ...

    async def read(self, key: str) -> tuple[dict[str, Any], str]: ...

    async def probe(self) -> None: ...

    async def aclose(self) -> None: ...


def value_doc(raw: Any) -> dict[str, Any]:
    """A remote value as the data of a local version: a non-empty JSON object is kept as is, anything else
    becomes ``{"value": <string>}``."""
    import orjson

    if isinstance(raw, dict) and raw:
        return raw
    if isinstance(raw, str):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and parsed:
            return parsed
        return {"value": raw}
    return {"value": orjson.dumps(raw).decode()}
