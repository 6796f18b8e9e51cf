"""Validation of everything a client sends to the secrets API (spec core.md §6.1, §6.2, §10.2).

Pure functions, no I/O. Errors use the documented codes: ``invalid_path`` (400), ``invalid_secret_type``
(400), ``invalid_duration`` (400), ``invalid_request`` (400: body is not a JSON object),
``validation_error`` (422, ``details.fields``), ``payload_too_large`` (413).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

import orjson

from core.durations import parse_duration
from core.errors import AppError

MAX_PATH_CHARS = 512
MAX_SEGMENTS = 10
MAX_DATA_BYTES = 128 * 1024
MAX_METADATA_BYTES = 16 * 1024
MAX_VERSIONS_LIMIT = 100
MAX_TAGS = 64
SECRET_TYPES = ("kv", "json", "certificate", "ssh_key", "api_key")
_PATH_RE = re.compile(r"[a-z0-9_\-]+(?:/[a-z0-9_\-]+)*")
_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/\-]{0,63}")
_ID_RE = re.compile(r"[A-Za-z0-9_\-]{1,128}")


def field_error(field_name: str, message: str, code: str = "validation_error", **details: Any) -> AppError:
    if code == "validation_error":
        return AppError(code, f"{field_name}: {message}", {"fields": [{"field": field_name, "message": message}]})
    return AppError(code, f"{field_name}: {message}", {"field": field_name, **details})


# ----------------------------------------------------------------------------------------- paths


def path_problem(path: str) -> str | None:
    """Why ``path`` breaks the rules of §6.2, or None when it is valid."""
    if not path:
        return "path must not be empty"
    if len(path) > MAX_PATH_CHARS:
        return f"path is longer than {MAX_PATH_CHARS} characters"
    if path.startswith("/") or path.endswith("/"):
        return "path must not start or end with '/'"
    if "//" in path:
        return "path must not contain empty segments ('//')"
    if _PATH_RE.fullmatch(path) is None:
        return "path may only contain a-z, 0-9, '-', '_' and '/' (lower case)"
    if path.count("/") + 1 > MAX_SEGMENTS:
        return f"path has more than {MAX_SEGMENTS} segments"
    return None


def check_path(path: str) -> str:
    problem = path_problem(path)
    if problem is not None:
        shown = path if len(path) <= MAX_PATH_CHARS else path[:MAX_PATH_CHARS] + "..."
        raise AppError("invalid_path", f"Invalid secret path: {problem}", {"path": shown, "reason": problem})
    return path


def check_prefix(prefix: str) -> str:
    """A list prefix: a path, optionally ending with '/', or empty."""
    if prefix:
        check_path(prefix.removesuffix("/"))
    return prefix


# ------------------------------------------------------------------------------------ data shapes
# ``secret_type`` is a hint for consumers; storage is identical for every type (spec core.md §6.1): any non-empty
# JSON object is stored as sent, whatever its type. What a type adds is on the way out: ``read_hints`` parses
# what it can (a certificate's validity, subject, ...) so a consumer need not, and adds nothing when it cannot.


def _x509_name(name: Any) -> str:
    return str(name.rfc4514_string())


def _utc_iso(ts: Any) -> str:
    return str(ts.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))


def _certificate_hints(data: dict[str, Any]) -> dict[str, Any] | None:
    pem = data.get("cert_pem")
    if not isinstance(pem, str) or "-----BEGIN CERTIFICATE-----" not in pem:
        return None
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        cert = x509.load_pem_x509_certificate(pem.encode("utf-8", "surrogatepass"))  # the first one in the text
        hints = {
            "subject": _x509_name(cert.subject),
            "issuer": _x509_name(cert.issuer),
            "serial_number": format(cert.serial_number, "x"),
            "not_before": _utc_iso(cert.not_valid_before_utc),
            "not_after": _utc_iso(cert.not_valid_after_utc),
            "fingerprint_sha256": cert.fingerprint(hashes.SHA256()).hex(),
        }
    except Exception:  # any malformed PEM/DER/extension: no hints, the stored data is served as it is
        return None
    return hints


_HINTS = {"certificate": _certificate_hints}


def read_hints(secret_type: str, plaintext: bytes) -> dict[str, Any] | None:
    """Parsed fields a read of a ``secret_type`` secret adds as ``parsed`` (None: nothing to add). Only types
    with a parser pay for the JSON parse; nothing here can fail a read."""
    parse = _HINTS.get(secret_type)
    if parse is None:
        return None
    try:
        data = orjson.loads(plaintext)
    except orjson.JSONDecodeError:
        return None
    return parse(data) if isinstance(data, dict) else None


def check_secret_type(value: Any) -> str:
    if not isinstance(value, str) or value not in SECRET_TYPES:
        raise AppError("invalid_secret_type", f"secret_type must be one of {', '.join(SECRET_TYPES)}",
                       {"secret_type": value if isinstance(value, str) else None, "allowed": list(SECRET_TYPES)})
    return value


def check_data(data: Any, secret_type: str) -> bytes:
    """Validate ``data`` (any non-empty JSON object, for every ``secret_type``); returns its canonical JSON bytes
    (what gets sealed)."""
    if not isinstance(data, dict):
        raise field_error("data", "must be a JSON object")
    if not data:
        raise field_error("data", "must not be empty")
    if any(not k for k in data):
        raise field_error("data", "field names must not be empty")
    encoded = orjson.dumps(data)  # the same for every secret_type: the type is a hint (§6.1)
    if len(encoded) > MAX_DATA_BYTES:
        raise AppError("payload_too_large", f"data is larger than {MAX_DATA_BYTES} bytes",
                       {"limit": MAX_DATA_BYTES})
    return encoded


# --------------------------------------------------------------------------------------- metadata


def check_metadata(value: Any, *, partial: bool = False) -> dict[str, Any]:
    """``description`` (str), ``tags`` (list of str), ``owner`` (str), ``custom`` (object), plus any other
    JSON keys. With ``partial`` (PATCH) a null value means "remove this key"."""
    if not isinstance(value, dict):
        raise field_error("metadata", "must be a JSON object")
    out: dict[str, Any] = {}
    for key, v in value.items():
        if v is None and partial:
            out[key] = None
            continue
        if key in ("description", "owner"):
            if not isinstance(v, str) or len(v) > 1024:
                raise field_error(f"metadata.{key}", "must be a string of at most 1024 characters")
        elif key == "tags":
            if not isinstance(v, list) or len(v) > MAX_TAGS:
                raise field_error("metadata.tags", f"must be a list of at most {MAX_TAGS} strings")
            for i, tag in enumerate(v):
                if not isinstance(tag, str) or _TAG_RE.fullmatch(tag) is None:
                    raise field_error(f"metadata.tags[{i}]", "tags are 1-64 characters of A-Z a-z 0-9 _ . : / -")
            v = list(dict.fromkeys(v))
        elif key == "custom" and not isinstance(v, dict):
            raise field_error("metadata.custom", "must be a JSON object")
        out[key] = v
    encoded = orjson.dumps(out)
    if b"\\u0000" in encoded and _has_nul(out):  # jsonb cannot store NUL: refuse it here, not with a 5xx
        raise field_error("metadata", "must not contain NUL characters (in keys or values)")
    if len(encoded) > MAX_METADATA_BYTES:
        raise AppError("payload_too_large", f"metadata is larger than {MAX_METADATA_BYTES} bytes",
                       {"limit": MAX_METADATA_BYTES})
    return out


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def merge_metadata(stored: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = dict(stored)
    for key, v in patch.items():
        if v is None:
            merged.pop(key, None)
        else:
            merged[key] = v
    return merged


# ---------------------------------------------------------------------------------------- options

_UNSET: Any = object()


@dataclass(slots=True)
class WriteOptions:
    """Parsed ``options``. Fields left ``UNSET`` were not sent (PATCH keeps the stored value)."""

    max_versions: int | None = field(default=_UNSET)
    expires_in: timedelta | None = field(default=_UNSET)
    rotation_policy_id: str | None = field(default=_UNSET)
    secret_policy_id: str | None = field(default=_UNSET)
    notify_before: str | None = field(default=_UNSET)
    cas: int | None = None

    @staticmethod
    def is_set(value: Any) -> bool:
        return value is not _UNSET


def _int_option(name: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise field_error(f"options.{name}", f"must be an integer between {lo} and {hi}")
    return v


def _id_option(name: str, v: Any, prefix: str) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or _ID_RE.fullmatch(v) is None or not v.startswith(prefix):
        raise field_error(f"options.{name}", f"must be an id like '{prefix}...'")
    return v


def _notify_before(v: Any) -> str | None:
    if v is None:
        return None
    items = v if isinstance(v, list) else str(v).split(",")
    parts = [str(p).strip() for p in items if str(p).strip()]
    for p in parts:
        parse_duration(p, field="options.notify_before")
    return ",".join(parts) or None


_OPTION_KEYS = {"max_versions", "expires_in", "rotation_policy_id", "secret_policy_id", "notify_before", "cas"}


def check_options(value: Any, *, allow_cas: bool = True) -> WriteOptions:
    opts = WriteOptions()
    if value is None:
        return opts
    if not isinstance(value, dict):
        raise field_error("options", "must be a JSON object")
    unknown = sorted(set(value) - _OPTION_KEYS - (set() if allow_cas else {"cas"}))
    if unknown or (not allow_cas and "cas" in value):
        bad = unknown or ["cas"]
        raise AppError("validation_error", "unknown option", {"fields": [
            {"field": f"options.{k}", "message": "unknown option"} for k in bad]})
    if "max_versions" in value:
        v = value["max_versions"]
        opts.max_versions = None if v is None else _int_option("max_versions", v, 1, MAX_VERSIONS_LIMIT)
    if "expires_in" in value:
        v = value["expires_in"]
        if v is None:
            opts.expires_in = None
        else:
            dur = parse_duration(v, field="options.expires_in")
            if dur.total_seconds() <= 0:
                raise AppError("invalid_duration", "options.expires_in must be positive",
                               {"field": "options.expires_in", "value": str(v)})
            opts.expires_in = dur
    if "rotation_policy_id" in value:
        opts.rotation_policy_id = _id_option("rotation_policy_id", value["rotation_policy_id"], "rot_")
    if "secret_policy_id" in value:
        opts.secret_policy_id = _id_option("secret_policy_id", value["secret_policy_id"], "sp_")
    if "notify_before" in value:
        opts.notify_before = _notify_before(value["notify_before"])
    if value.get("cas") is not None:
        opts.cas = _int_option("cas", value["cas"], 0, 2**31 - 1)
    return opts


# ------------------------------------------------------------------------------------------ bodies


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise AppError("invalid_request", "request body must be a JSON object")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise AppError("invalid_request", "request body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise AppError("invalid_request", "request body must be a JSON object")
    return doc


def reject_unknown(doc: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise AppError("validation_error", "unknown field", {"fields": [
            {"field": k, "message": "unknown field"} for k in unknown]})


def query_int(raw: str | None, name: str, lo: int, hi: int, default: int | None = None) -> int | None:
    """A query integer: ASCII digits only (``int()`` would also take ``" 3\\n"``, ``"+3"`` or other scripts' digits)
    in ``lo..hi``; absent or empty gives ``default``; anything else is ``422 validation_error`` naming ``name``."""
    if raw is None or raw == "":
        return default
    v = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else lo - 1
    if not lo <= v <= hi:
        raise field_error(name, f"must be an integer between {lo} and {hi}")
    return v


MAX_VERSION = 2**31 - 1  # versions are PostgreSQL integers


def is_version(v: object) -> bool:
    """A version number a client may name in a body: an int (not a bool) within the column's range."""
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_VERSION


def parse_version(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    v = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 10 else 0  # ASCII digits only
    if not 1 <= v <= MAX_VERSION:
        raise field_error("version", "must be a positive integer")
    return v
