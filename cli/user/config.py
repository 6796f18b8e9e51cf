"""Where the user CLI finds its URL, token and tenant: environment first, then ``~/.scaivault/config.json``.

| setting | env | config key | default |
|---|---|---|---|
| API URL | ``SCAIVAULT_URL`` | ``url`` | ``http://127.0.0.1:8200`` (``make dev``) |
| token | ``SCAIVAULT_TOKEN`` | ``token`` | none (exit 2) |
| tenant | ``SCAIVAULT_TENANT_ID`` | ``tenant_id`` | the token's tenant |
| partner scope | ``SCAIVAULT_PARTNER_ID`` | ``partner_id`` | none (tenant secrets) |
| debug | ``SCAIVAULT_DEBUG=1`` | - | off |

The file is written with mode 0600 inside a 0700 directory; ``SCAIVAULT_CONFIG`` points elsewhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8200"


def config_path() -> Path:
    override = os.environ.get("SCAIVAULT_CONFIG")
    return Path(override) if override else Path.home() / ".scaivault" / "config.json"


def load_file() -> dict[str, Any]:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def save_file(values: dict[str, Any]) -> Path:
    """Write atomically with mode 0600 (created that way, never world-readable for an instant)."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class Config:
    url: str
    token: str | None
    tenant_id: str | None
    partner_id: str | None
    debug: bool

    def __repr__(self) -> str:
        return f"Config(url={self.url!r}, token={'***' if self.token else None}, tenant_id={self.tenant_id!r})"


def resolve() -> Config:
    f = load_file()
    env = os.environ
    return Config(url=env.get("SCAIVAULT_URL") or f.get("url") or DEFAULT_URL,
                  token=env.get("SCAIVAULT_TOKEN") or f.get("token") or None,
                  tenant_id=env.get("SCAIVAULT_TENANT_ID") or f.get("tenant_id") or None,
                  partner_id=env.get("SCAIVAULT_PARTNER_ID") or f.get("partner_id") or None,
                  debug=env.get("SCAIVAULT_DEBUG", "").lower() in ("1", "true", "yes"))
