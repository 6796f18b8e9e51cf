"""A thin synchronous wrapper over certbot's ``acme`` library (RFC 8555): no hand-rolled JWS. Every call blocks on
network I/O, so the async callers run them with ``asyncio.to_thread``.

Errors leave this module as :class:`AcmeFailure` with a classified code (``acme_challenge_failed``,
``backend_rate_limited`` with the CA's ``Retry-After``, ``acme_backend_error``); nothing here logs or carries key
material.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import josepy as jose
import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

USER_AGENT = "scaivault-acme/1.0"

DIRECTORIES: dict[str, dict[str, str]] = {
    "letsencrypt": {"production": "https://acme-v02.api.letsencrypt.org/directory",
                    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory"},
    "zerossl": {"production": "https://acme.zerossl.com/v2/DV90", "staging": "https://acme.zerossl.com/v2/DV90"},
    "buypass": {"production": "https://api.buypass.com/acme/directory",
                "staging": "https://api.test4.buypass.no/acme/directory"},
    "google": {"production": "https://dv.acme-v02.api.pki.goog/directory",
               "staging": "https://dv.acme-v02.test-api.pki.goog/directory"},
}
EAB_REQUIRED = frozenset({"zerossl", "google"})


class AcmeFailure(Exception):
    """A classified failure talking to the CA. ``message`` is safe to store and show (no key material)."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.details = details or {}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


class _Network(client.ClientNetwork):  # type: ignore[misc]
    """Keeps the CA's ``Retry-After`` on rate-limit errors (the library drops the response)."""

    @classmethod
    def _check_response(cls, response: requests.Response, content_type: str | None = None) -> requests.Response:
        try:
            return super()._check_response(response, content_type=content_type)  # type: ignore[no-any-return]
        except messages.Error as exc:
            if exc.typ == "urn:ietf:params:acme:error:rateLimited" or response.status_code == 429:
                raise AcmeFailure("backend_rate_limited", f"the CA rate-limited the request: {exc.detail or exc}",
                                  retry_after=_retry_after(response.headers.get("Retry-After"))) from None
            raise


def generate_account_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


KEY_TYPES = {"ec256": ("ec", 256), "ec384": ("ec", 384), "rsa2048": ("rsa", 2048), "rsa4096": ("rsa", 4096)}


def generate_cert_key(key_type: str) -> bytes:
    kind, bits = KEY_TYPES[key_type]
    key: Any = (ec.generate_private_key(ec.SECP256R1() if bits == 256 else ec.SECP384R1()) if kind == "ec"
                else rsa.generate_private_key(public_exponent=65537, key_size=bits))
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_csr(key_pem: bytes, domains: list[str]) -> bytes:
    return crypto_util.make_csr(key_pem, domains)  # type: ignore[no-any-return]


def _jwk(key_pem: bytes) -> jose.JWKEC:
    return jose.JWKEC(key=serialization.load_pem_private_key(key_pem, password=None))


def _verify(ca_bundle: str | None) -> str | bool:
    return ca_bundle or True


@dataclass
class Challenge:
    domain: str
    token: str
    validation: str  # the key authorization (http-01) or the TXT value (dns-01): not secret, public by design
    record: str  # the URL path (http-01) or the TXT record name (dns-01)
    status: str = "pending"
    challb: Any = field(default=None, repr=False)
    response: Any = field(default=None, repr=False)


class Session:
    """One ACME session bound to an account key (and, once known, the account URL)."""

    def __init__(self, directory_url: str, key_pem: bytes, *, account_url: str | None = None,
                 ca_bundle: str | None = None, timeout: float = 30.0) -> None:
        self.key = _jwk(key_pem)
        # acme forwards verify_ssl to requests as ``verify=``: a CA file path works (its annotation says bool)
        self.net = _Network(self.key, alg=jose.ES256, user_agent=USER_AGENT,
                            verify_ssl=_verify(ca_bundle),  # type: ignore[arg-type]
                            timeout=int(timeout))
        try:
            directory = client.ClientV2.get_directory(directory_url, self.net)
        except AcmeFailure:
            raise
        except Exception as exc:
            raise AcmeFailure("invalid_directory", f"'{directory_url}' is not a reachable ACME directory "
                                                   f"({type(exc).__name__})") from None
        if not hasattr(directory, "newOrder") or not hasattr(directory, "newNonce"):
            raise AcmeFailure("invalid_directory", f"'{directory_url}' is not an ACME directory")
        self.acme = client.ClientV2(directory, net=self.net)
        if account_url:
            self.net.account = messages.RegistrationResource(uri=account_url, body=messages.Registration())

    def register(self, email_addr: str | None, *, eab_kid: str | None = None, eab_hmac_key: str | None = None) -> str:
        eab = None
        if eab_kid and eab_hmac_key:
            eab = messages.ExternalAccountBinding.from_data(
                account_public_key=self.key.public_key(), kid=eab_kid, hmac_key=eab_hmac_key,
                directory=self.acme.directory)
        reg = messages.NewRegistration.from_data(email=email_addr, terms_of_service_agreed=True,
                                                 external_account_binding=eab)
        try:
            acct = self.acme.new_account(reg)
        except errors.ConflictError as exc:  # the key already has an account: reuse it
            return str(exc.location)
        except AcmeFailure:
            raise
        except messages.Error as exc:
            raise AcmeFailure("acme_backend_error", f"the CA refused the account: {exc.detail or exc.typ}") from None
        return str(acct.uri)

    def new_order(self, csr_pem: bytes) -> Any:
        return self._call(self.acme.new_order, csr_pem)

    def challenges(self, order: Any, kind: str) -> list[Challenge]:
        want = challenges.HTTP01 if kind == "http-01" else challenges.DNS01
        out: list[Challenge] = []
        for authz in order.authorizations:
            domain = authz.body.identifier.value
            if authz.body.wildcard:
                domain = "*." + domain
            if authz.body.status == messages.STATUS_VALID:  # an authorization the CA reused
                out.append(Challenge(domain=domain, token="", validation="", record="", status="valid"))
                continue
            challb = next((c for c in authz.body.challenges if isinstance(c.chall, want)), None)
            if challb is None:
                raise AcmeFailure("acme_challenge_failed", f"the CA offers no {kind} challenge for {domain}")
            response, validation = challb.response_and_validation(self.key)
            base = domain[2:] if domain.startswith("*.") else domain
            record = (challb.chall.path if kind == "http-01" else challb.chall.validation_domain_name(base))
            out.append(Challenge(domain=domain, token=challb.chall.encode("token"), validation=validation,
                                 record=record, challb=challb, response=response))
        return out

    def answer(self, ch: Challenge) -> None:
        if ch.challb is not None:
            self._call(self.acme.answer_challenge, ch.challb, ch.response)
            ch.status = "processing"

    def finalize(self, order: Any, timeout_seconds: float) -> str:
        deadline = datetime.now() + timedelta(seconds=timeout_seconds)
        try:
            final = self.acme.poll_and_finalize(order, deadline)
        except errors.ValidationError as exc:
            failed = []
            for authz in exc.failed_authzrs:
                for c in authz.body.challenges:
                    if c.error is not None:
                        failed.append({"domain": authz.body.identifier.value, "type": c.chall.typ,
                                       "error": str(c.error.detail or c.error.typ)[:300]})
            first = failed[0] if failed else {"domain": "?", "error": "authorization invalid"}
            raise AcmeFailure("acme_challenge_failed", f"challenge for {first['domain']} failed: {first['error']}",
                              details={"challenges": failed}) from None
        except errors.TimeoutError:
            raise AcmeFailure("acme_backend_error", "the CA did not finish the order in time") from None
        except AcmeFailure:
            raise
        except messages.Error as exc:
            raise AcmeFailure("acme_backend_error", f"the CA refused the order: {exc.detail or exc.typ}") from None
        return str(final.fullchain_pem)

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except AcmeFailure:
            raise
        except messages.Error as exc:
            code = "acme_challenge_failed" if exc.typ and any(
                t in exc.typ for t in ("connection", "dns", "incorrectResponse", "unauthorized", "caa")) \
                else "acme_backend_error"
            raise AcmeFailure(code, f"the CA answered: {exc.detail or exc.typ}") from None
        except requests.RequestException as exc:
            raise AcmeFailure("acme_backend_error", f"the CA is unreachable ({type(exc).__name__})") from None
