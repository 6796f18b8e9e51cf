"""X.509 building blocks on ``cryptography``: keys, CA and leaf certificates, CRLs, CSR parsing.

Pure and synchronous (callers run key generation and signing in a worker thread). Every certificate gets a
random serial of 127 bits (RFC 5280 allows 20 octets; CA/B Forum asks for >= 64 random bits), SKI and AKI, and
leaves get a SAN for every name (the CN included), key usage / EKU from the role and the issuer's CRL
distribution point.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.errors import AppError

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

RSA_SIZES = (2048, 3072, 4096)
CA_RSA_SIZES = (2048, 4096)
EC_SIZES = {256: ec.SECP256R1, 384: ec.SECP384R1}

# RFC 5280 §5.3.1 reason codes by their API names
REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key_compromise": x509.ReasonFlags.key_compromise,
    "ca_compromise": x509.ReasonFlags.ca_compromise,
    "affiliation_changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation_of_operation": x509.ReasonFlags.cessation_of_operation,
    "certificate_hold": x509.ReasonFlags.certificate_hold,
    "privilege_withdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aa_compromise": x509.ReasonFlags.aa_compromise,
}
BACKDATE = timedelta(seconds=30)  # clock skew allowance on notBefore


def invalid(field: str, message: str, **details: object) -> AppError:
    return AppError("validation_error", message, {"fields": [{"field": field, "message": message}], **details})


def random_serial() -> int:
    """127 random bits with the top bit forced on: always 16 bytes, positive, never zero."""
    return secrets.randbits(126) | (1 << 126)


def serial_hex(serial: int) -> str:
    return format(serial, "x")


def serial_colon(serial: int) -> str:
    h = format(serial, "x")
    h = "0" + h if len(h) % 2 else h
    return ":".join(h[i:i + 2] for i in range(0, len(h), 2))


def check_key_shape(key_type: str, key_size: int, *, ca: bool, field: str = "key_type") -> None:
    if key_type == "rsa":
        sizes = CA_RSA_SIZES if ca else RSA_SIZES
        if key_size not in sizes:
            raise invalid("key_size" if ca else "key_bits", f"RSA keys must be {' or '.join(map(str, sizes))} bits",
                          key_type=key_type, key_size=key_size)
    elif key_type == "ec":
        if key_size not in EC_SIZES:
            raise invalid("key_size" if ca else "key_bits", "EC keys must be P-256 (256) or P-384 (384)",
                          key_type=key_type, key_size=key_size)
    else:
        raise invalid(field, f"unsupported key type {key_type!r}: use 'rsa' or 'ec'", key_type=key_type)


def generate_key(key_type: str, key_size: int) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    return ec.generate_private_key(EC_SIZES[key_size]())


def key_shape(key: PublicKey | PrivateKey | object) -> tuple[str, int]:
    """(key_type, bits) of a key; unsupported types raise validation_error."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "rsa", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        if isinstance(key.curve, ec.SECP256R1):
            return "ec", 256
        if isinstance(key.curve, ec.SECP384R1):
            return "ec", 384
        raise invalid("csr_pem", f"unsupported EC curve {key.curve.name}: use P-256 or P-384", key_type="ec")
    raise invalid("csr_pem", f"unsupported key type {type(key).__name__}: use RSA or EC (P-256/P-384)")


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key


def _hash_for(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return hashes.SHA384()
    return hashes.SHA256()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def path_length(cert: x509.Certificate) -> int | None:
    return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _name(common_name: str, organization: list[str] | None = None, ou: list[str] | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organization or []]
    attrs += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, u) for u in ou or []]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _crl_dp(url: str | None) -> x509.CRLDistributionPoints | None:
    if not url:
        return None
    return x509.CRLDistributionPoints([x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)], relative_name=None, reasons=None, crl_issuer=None)])


@dataclass(frozen=True)
class Issuer:
    cert: x509.Certificate
    key: PrivateKey
    crl_url: str | None


def build_ca(*, common_name: str, key: PrivateKey, validity: timedelta, issuer: Issuer | None,
             path_length: int | None, now: datetime | None = None) -> x509.Certificate:
    """A root (``issuer`` None: self-signed) or an intermediate signed by ``issuer``; validity clamped to it."""
    now = now or datetime.now(UTC)
    not_before = now - BACKDATE
    not_after = now + validity
    subject = _name(common_name)
    pub = key.public_key()
    signer = issuer.key if issuer else key
    if issuer is not None:
        not_after = min(not_after, issuer.cert.not_valid_after_utc)
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer.cert.subject if issuer else subject)
         .public_key(pub).serial_number(random_serial())
         .not_valid_before(not_before).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                      crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False))
    if issuer is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                            critical=False)
        dp = _crl_dp(issuer.crl_url)
        if dp is not None:
            b = b.add_extension(dp, critical=False)
    else:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(pub), critical=False)
    return b.sign(signer, _hash_for(signer))


@dataclass(frozen=True)
class LeafSpec:
    common_name: str
    dns_names: list[str]
    ip_sans: list[str]
    not_after: datetime
    server: bool
    client: bool
    organization: list[str]
    ou: list[str]


def build_leaf(spec: LeafSpec, public_key: PublicKey, issuer: Issuer, *,
               now: datetime | None = None) -> x509.Certificate:
    now = now or datetime.now(UTC)
    not_after = min(spec.not_after, issuer.cert.not_valid_after_utc)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in spec.dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in spec.ip_sans]
    ekus = ([ExtendedKeyUsageOID.SERVER_AUTH] if spec.server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if spec.client else [])
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    b = (x509.CertificateBuilder().subject_name(_name(spec.common_name, spec.organization, spec.ou))
         .issuer_name(issuer.cert.subject).public_key(public_key).serial_number(random_serial())
         .not_valid_before(now - BACKDATE).not_valid_after(not_after)
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=is_rsa,
                                      data_encipherment=False, key_agreement=not is_rsa, key_cert_sign=False,
                                      crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                        critical=False))
    if ekus:
        b = b.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    dp = _crl_dp(issuer.crl_url)
    if dp is not None:
        b = b.add_extension(dp, critical=False)
    return b.sign(issuer.key, _hash_for(issuer.key))


@dataclass(frozen=True)
class Revoked:
    serial: int
    revoked_at: datetime
    reason: str | None


def build_crl(issuer: Issuer, revoked: list[Revoked], *, number: int, this_update: datetime,
              next_update: datetime) -> x509.CertificateRevocationList:
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.cert.subject)
         .last_update(this_update).next_update(next_update)
         .add_extension(x509.CRLNumber(number), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
                        critical=False))
    for r in revoked:
        rb = x509.RevokedCertificateBuilder().serial_number(r.serial).revocation_date(r.revoked_at)
        flag = REASONS.get(r.reason or "")
        if flag is not None and flag is not x509.ReasonFlags.unspecified:
            rb = rb.add_extension(x509.CRLReason(flag), critical=False)
        b = b.add_revoked_certificate(rb.build())
    return b.sign(issuer.key, _hash_for(issuer.key))


# --------------------------------------------------------------------------------------------- CSRs


@dataclass(frozen=True)
class ParsedCsr:
    csr: x509.CertificateSigningRequest
    common_name: str | None
    dns_names: list[str]
    ip_sans: list[str]
    key_type: str
    key_bits: int


def parse_csr(pem: object, field: str = "csr_pem") -> ParsedCsr:
    if not isinstance(pem, str) or not pem.strip():
        raise invalid(field, "a PEM-encoded PKCS#10 certificate signing request is required")
    if len(pem) > 64 * 1024:
        raise invalid(field, "the CSR is too large")
    try:
        csr = x509.load_pem_x509_csr(pem.strip().encode())
    except (ValueError, TypeError):
        raise invalid(field, "not a valid PEM-encoded PKCS#10 certificate signing request") from None
    try:
        public_key = csr.public_key()
    except (ValueError, TypeError, x509.UnsupportedGeneralNameType):
        raise invalid(field, "the CSR's public key is not supported") from None
    key_type, bits = key_shape(public_key)
    try:
        ok = csr.is_signature_valid
    except (ValueError, InvalidSignature, TypeError):
        ok = False
    if not ok:
        raise invalid(field, "the CSR's signature does not verify (proof of possession failed)")
    try:
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(cns[0].value) if cns else None
    except (ValueError, TypeError):
        raise invalid(field, "the CSR's subject cannot be parsed") from None
    dns: list[str] = []
    ips: list[str] = []
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
        if len(dns) + len(ips) != len(list(san)):
            raise invalid(field, "the CSR asks for SAN types other than DNS names and IP addresses")
    except x509.ExtensionNotFound:
        pass
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise invalid(field, "the CSR's extensions cannot be parsed") from None
    return ParsedCsr(csr, cn, dns, ips, key_type, bits)
