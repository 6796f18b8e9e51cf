"""Secret (value-generation) policy model and validation (spec core.md §10.7).

``validate_secret_policy(doc)`` turns an API document into a :class:`SecretPolicySpec`. Structural
problems raise ``AppError("validation_error")``; bad generator names or config values raise
``AppError("invalid_config")``. ``details["field"]`` always points at the element, e.g.
``fields[1].config.length``. Error messages never echo configured values of ``static`` fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from core.errors import AppError
from secretgen.charsets import CHARSETS, CLASSES, acceptance_probability, class_members

PolicyType = Literal["password", "api_key", "oauth_client", "ssh_key", "custom"]
POLICY_TYPES: Final = ("password", "api_key", "oauth_client", "ssh_key", "custom")
GENERATORS: Final = (
    "random",
    "hex",
    "uuid",
    "template",
    "rsa_keypair",
    "ec_keypair",
    "ssh_keypair",
    "bcrypt_hash",
    "static",
)
MAX_FIELDS: Final = 50
MAX_LENGTH: Final = 1024
MAX_TEMPLATE: Final = 4096
MAX_STATIC: Final = 65536
BCRYPT_MAX_LENGTH: Final = 72  # bcrypt only uses the first 72 bytes
BCRYPT_ROUNDS: Final = (4, 15)
#: Refuse ``random`` configs whose required classes would be hit by fewer than 1% of draws.
MIN_ACCEPTANCE: Final = 0.01
_FIELD_NAME_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_TEMPLATE_TOKEN_RE: Final = re.compile(r"\{\{\s*([a-z]+)\s*(?::\s*(\d+)\s*)?\}\}")


# -- config dataclasses ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RandomConfig:
    length: int = 32
    charset: str = "alphanumeric"
    require_upper: bool = False
    require_lower: bool = False
    require_digit: bool = False
    require_symbol: bool = False
    exclude_chars: str = ""
    #: Derived: the alphabet after exclusions, and the required classes restricted to it.
    alphabet: str = field(default="", compare=False)
    required: tuple[frozenset[str], ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class HexConfig:
    length: int = 32


@dataclass(frozen=True, slots=True)
class UuidConfig:
    version: int = 4


TemplatePart = str | tuple[str, int]  # literal text, or (placeholder, N)


@dataclass(frozen=True, slots=True)
class TemplateConfig:
    template: str
    parts: tuple[TemplatePart, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RsaKeypairConfig:
    bits: int = 2048
    public_key_field: str | None = None


@dataclass(frozen=True, slots=True)
class EcKeypairConfig:
    curve: str = "P-256"
    public_key_field: str | None = None


@dataclass(frozen=True, slots=True)
class SshKeypairConfig:
    key_type: str = "ed25519"
    comment: str = ""
    bits: int = 3072  # rsa only
    public_key_field: str | None = None


@dataclass(frozen=True, slots=True)
class BcryptConfig:
    length: int = 32
    rounds: int = 12
    charset: str = "alphanumeric"
    hash_field: str | None = None


@dataclass(frozen=True, slots=True)
class StaticConfig:
    value: str = field(repr=False)  # may be sensitive: never in reprs or error texts


GeneratorConfig = (
    RandomConfig
    | HexConfig
    | UuidConfig
    | TemplateConfig
    | RsaKeypairConfig
    | EcKeypairConfig
    | SshKeypairConfig
    | BcryptConfig
    | StaticConfig
)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    generator: str
    config: GeneratorConfig
    #: Extra output key (public key / bcrypt hash) or None.
    companion: str | None = None

    @property
    def output_keys(self) -> tuple[str, ...]:
        return (self.name,) if self.companion is None else (self.name, self.companion)


@dataclass(frozen=True, slots=True)
class SecretPolicySpec:
    name: str
    fields: tuple[FieldSpec, ...]
    policy_type: PolicyType = "custom"
    description: str = ""
    is_active: bool = True

    @property
    def output_keys(self) -> tuple[str, ...]:
        return tuple(k for f in self.fields for k in f.output_keys)


# -- validation -----------------------------------------------------------------------------------


def _structure(field_: str, message: str) -> AppError:
    return AppError("validation_error", f"{field_}: {message}", {"field": field_})


def _config(field_: str, message: str) -> AppError:
    return AppError("invalid_config", f"{field_}: {message}", {"field": field_})


_TOP_KEYS: Final = frozenset({"name", "policy_type", "fields", "description", "is_active"})
_IGNORED_KEYS: Final = frozenset({"id", "created_at", "updated_at", "tenant_id"})


def validate_secret_policy(doc: Mapping[str, Any]) -> SecretPolicySpec:
    """Validate a secret-policy document (POST/PUT body) into a :class:`SecretPolicySpec`."""
    if not isinstance(doc, Mapping):
        raise _structure("body", "secret policy must be a JSON object")
    extra = sorted(str(k) for k in doc if k not in _TOP_KEYS | _IGNORED_KEYS)
    if extra:
        raise _structure(extra[0], f"unknown key(s) {extra}")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        raise _structure("name", "name is required (1-128 characters)")
    policy_type = doc.get("policy_type", "custom")
    if policy_type not in POLICY_TYPES:
        raise _structure("policy_type", f"policy_type must be one of {list(POLICY_TYPES)}")
    description = doc.get("description") or ""
    if not isinstance(description, str) or len(description) > 1024:
        raise _structure("description", "description must be a string of at most 1024 characters")
    is_active = doc.get("is_active", True)
    if not isinstance(is_active, bool):
        raise _structure("is_active", "is_active must be a boolean")
    return SecretPolicySpec(
        name=name.strip(),
        fields=parse_fields(doc.get("fields")),
        policy_type=policy_type,
        description=description,
        is_active=is_active,
    )


def parse_fields(value: object, field_: str = "fields") -> tuple[FieldSpec, ...]:
    """Validate a ``fields`` array; output keys (incl. companions) must be unique."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or not value:
        raise _structure(field_, "fields must be a non-empty array")
    if len(value) > MAX_FIELDS:
        raise _structure(field_, f"at most {MAX_FIELDS} fields")
    out: list[FieldSpec] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        spec = parse_field(item, f"{field_}[{i}]")
        for key in spec.output_keys:
            if key in seen:
                where = "name" if key == spec.name else "config"
                raise _structure(f"{field_}[{i}].{where}", f"output key {key!r} is produced twice")
            seen.add(key)
        out.append(spec)
    return tuple(out)


def parse_field(value: object, field_: str) -> FieldSpec:
    if not isinstance(value, Mapping):
        raise _structure(field_, "field must be an object {name, generator, config}")
    extra = sorted(str(k) for k in value if k not in {"name", "generator", "config"})
    if extra:
        raise _structure(f"{field_}.{extra[0]}", f"unknown key(s) {extra}")
    name = value.get("name")
    if not isinstance(name, str) or not _FIELD_NAME_RE.fullmatch(name):
        raise _structure(
            f"{field_}.name", "name must be 1-64 characters [A-Za-z0-9_-], not starting with a digit"
        )
    generator = value.get("generator")
    if generator not in GENERATORS:
        raise _config(f"{field_}.generator", f"unknown generator; use one of {list(GENERATORS)}")
    config = value.get("config", {})
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise _structure(f"{field_}.config", "config must be an object")
    parsed = _PARSERS[generator](_Cfg(config, f"{field_}.config"))
    return FieldSpec(name=name, generator=generator, config=parsed, companion=_companion(name, parsed))


def _companion(name: str, config: GeneratorConfig) -> str | None:
    if isinstance(config, RsaKeypairConfig | EcKeypairConfig | SshKeypairConfig):
        if config.public_key_field:
            return config.public_key_field
        if name == "private_key":
            return "public_key"
        if name.endswith("_private_key"):
            return name.removesuffix("_private_key") + "_public_key"
        return f"{name}_public"
    if isinstance(config, BcryptConfig):
        if config.hash_field:
            return config.hash_field
        return "hash" if name == "password" else f"{name}_hash"
    return None


class _Cfg:
    """Typed accessors over one generator's config that track which keys were consumed."""

    def __init__(self, raw: Mapping[str, Any], field_: str) -> None:
        self.raw = raw
        self.field = field_
        self.used: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.field}.{key}"

    def get_int(self, key: str, default: int, lo: int, hi: int) -> int:
        self.used.add(key)
        v = self.raw.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise _config(self.at(key), f"{key} must be an integer between {lo} and {hi}")
        return v

    def get_choice(self, key: str, default: Any, allowed: Sequence[Any]) -> Any:
        self.used.add(key)
        v = self.raw.get(key, default)
        if isinstance(v, bool) or v not in allowed:
            raise _config(self.at(key), f"{key} must be one of {list(allowed)}")
        return v

    def get_bool(self, key: str) -> bool:
        self.used.add(key)
        v = self.raw.get(key, False)
        if not isinstance(v, bool):
            raise _config(self.at(key), f"{key} must be a boolean")
        return v

    def get_str(self, key: str, default: str | None, max_len: int, *, required: bool = False) -> str | None:
        self.used.add(key)
        if key not in self.raw:
            if required:
                raise _config(self.at(key), f"{key} is required")
            return default
        v = self.raw[key]
        if not isinstance(v, str) or len(v) > max_len:
            raise _config(self.at(key), f"{key} must be a string of at most {max_len} characters")
        return v

    def output_name(self, key: str) -> str | None:
        v = self.get_str(key, None, 64)
        if v is not None and not _FIELD_NAME_RE.fullmatch(v):
            raise _config(self.at(key), f"{key} must be 1-64 characters [A-Za-z0-9_-]")
        return v

    def done(self) -> None:
        extra = sorted(str(k) for k in self.raw if k not in self.used)
        if extra:
            raise _config(self.at(extra[0]), f"unknown config key(s) {extra}; allowed: {sorted(self.used)}")


def _parse_random(c: _Cfg) -> RandomConfig:
    length = c.get_int("length", 32, 1, MAX_LENGTH)
    charset = c.get_choice("charset", "alphanumeric", list(CHARSETS))
    flags = {flag: c.get_bool(flag) for flag in CLASSES}
    exclude = c.get_str("exclude_chars", "", 256) or ""
    c.done()
    alphabet = "".join(ch for ch in CHARSETS[charset] if ch not in exclude)
    if len(alphabet) < 2:
        raise _config(c.at("exclude_chars"), "exclude_chars leaves fewer than 2 characters in the charset")
    required: list[frozenset[str]] = []
    for flag, on in flags.items():
        if not on:
            continue
        members = class_members(alphabet, flag)
        if not members:
            raise _config(
                c.at(flag), f"charset {charset!r} (after exclude_chars) has no characters for {flag}"
            )
        required.append(frozenset(members))
    if len(required) > length:
        raise _config(c.at("length"), f"length {length} is shorter than the number of required classes")
    p = acceptance_probability(len(alphabet), [len(r) for r in required], length)
    if p < MIN_ACCEPTANCE:
        raise _config(
            c.at("length"), f"length {length} is too short to satisfy the require_* options reliably"
        )
    return RandomConfig(
        length=length,
        charset=charset,
        exclude_chars=exclude,
        alphabet=alphabet,
        required=tuple(required),
        **flags,
    )


def _parse_hex(c: _Cfg) -> HexConfig:
    cfg = HexConfig(length=c.get_int("length", 32, 1, MAX_LENGTH))
    c.done()
    return cfg


def _parse_uuid(c: _Cfg) -> UuidConfig:
    cfg = UuidConfig(version=c.get_choice("version", 4, [4, 7]))
    c.done()
    return cfg


def _parse_template(c: _Cfg) -> TemplateConfig:
    template = c.get_str("template", None, MAX_TEMPLATE, required=True)
    c.done()
    assert template is not None
    if not template:
        raise _config(c.at("template"), "template must not be empty")
    parts: list[TemplatePart] = []
    pos = 0
    for m in _TEMPLATE_TOKEN_RE.finditer(template):
        literal = template[pos : m.start()]
        if "{{" in literal or "}}" in literal:
            raise _config(c.at("template"), "unbalanced or malformed '{{ }}' placeholder")
        if literal:
            parts.append(literal)
        parts.append(_template_token(m.group(1), m.group(2), c.at("template")))
        pos = m.end()
    tail = template[pos:]
    if "{{" in tail or "}}" in tail:
        raise _config(c.at("template"), "unbalanced or malformed '{{ }}' placeholder")
    if tail:
        parts.append(tail)
    return TemplateConfig(template=template, parts=tuple(parts))


def _template_token(kind: str, arg: str | None, where: str) -> tuple[str, int]:
    if kind in {"random", "hex"}:
        if arg is None or not 1 <= int(arg) <= MAX_LENGTH:
            raise _config(where, f"{{{{{kind}:N}}}} needs N between 1 and {MAX_LENGTH}")
        return (kind, int(arg))
    if kind in {"uuid", "timestamp"}:
        if arg is not None:
            raise _config(where, f"{{{{{kind}}}}} takes no argument")
        return (kind, 0)
    raise _config(where, f"unknown placeholder {{{{{kind}}}}}; use random:N, hex:N, uuid, timestamp")


def _parse_rsa(c: _Cfg) -> RsaKeypairConfig:
    cfg = RsaKeypairConfig(
        bits=c.get_choice("bits", 2048, [2048, 3072, 4096]),
        public_key_field=c.output_name("public_key_field"),
    )
    c.done()
    return cfg


def _parse_ec(c: _Cfg) -> EcKeypairConfig:
    cfg = EcKeypairConfig(
        curve=c.get_choice("curve", "P-256", ["P-256", "P-384"]),
        public_key_field=c.output_name("public_key_field"),
    )
    c.done()
    return cfg


def _parse_ssh(c: _Cfg) -> SshKeypairConfig:
    key_type = c.get_choice("key_type", "ed25519", ["ed25519", "rsa"])
    comment = c.get_str("comment", "", 256) or ""
    if any(not (32 <= ord(ch) < 127) for ch in comment):
        raise _config(c.at("comment"), "comment must be printable ASCII without newlines")
    bits = c.get_choice("bits", 3072, [2048, 3072, 4096])
    if "bits" in c.raw and key_type != "rsa":
        raise _config(c.at("bits"), "bits applies to key_type 'rsa' only")
    cfg = SshKeypairConfig(
        key_type=key_type, comment=comment, bits=bits, public_key_field=c.output_name("public_key_field")
    )
    c.done()
    return cfg


def _parse_bcrypt(c: _Cfg) -> BcryptConfig:
    cfg = BcryptConfig(
        length=c.get_int("length", 32, 8, BCRYPT_MAX_LENGTH),
        rounds=c.get_int("rounds", 12, *BCRYPT_ROUNDS),
        charset=c.get_choice("charset", "alphanumeric", ["alphanumeric", "alpha", "hex", "safe"]),
        hash_field=c.output_name("hash_field"),
    )
    c.done()
    try:
        import bcrypt  # noqa: F401
    except ImportError:
        raise _config(c.field, "bcrypt_hash unsupported: the 'bcrypt' package is not installed") from None
    return cfg


def _parse_static(c: _Cfg) -> StaticConfig:
    value = c.get_str("value", None, MAX_STATIC, required=True)
    c.done()
    assert value is not None
    return StaticConfig(value=value)


_PARSERS: dict[str, Callable[[_Cfg], GeneratorConfig]] = {
    "random": _parse_random,
    "hex": _parse_hex,
    "uuid": _parse_uuid,
    "template": _parse_template,
    "rsa_keypair": _parse_rsa,
    "ec_keypair": _parse_ec,
    "ssh_keypair": _parse_ssh,
    "bcrypt_hash": _parse_bcrypt,
    "static": _parse_static,
}
