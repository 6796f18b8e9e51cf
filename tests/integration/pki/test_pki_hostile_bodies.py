"""Hostile and odd JSON in every PKI body field never reaches a 5xx (derandomized Hypothesis, in-process API):
each field of the CA, role, issue, sign, CSR, revoke and trust-anchor bodies gets arbitrary JSON values."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.pki.conftest import make_hierarchy, ok
from tests.integration.pki.helpers import make_csr

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=80) | st.sampled_from(["rsa", "ec", "any", "root", "intermediate", "24h",
                                                             "example.com", "*.example.com", "10.0.0.1", "0s",
                                                             "9999999999d", "-1h", "a.example.com", "\u0000", "*"]),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=3), max_leaves=6)

FIELDS = {
    "/v1/pki/ca": ["name", "common_name", "ca_type", "parent_ca_id", "key_type", "key_size", "validity_days",
                   "max_path_length"],
    "/v1/pki/roles": ["name", "ca_id", "allowed_domains", "max_ttl", "ttl", "key_type", "key_bits", "ou",
                      "organization", "allow_subdomains", "allow_ip_sans", "require_cn", "allow_any_name",
                      "enforce_hostnames"],
    "/v1/pki/issue/web-a": ["common_name", "alt_names", "ip_sans", "ttl"],
    "/v1/pki/sign/web-a": ["csr_pem", "common_name", "alt_names", "ip_sans", "ttl"],
    "/v1/pki/csr": ["role", "csr_pem", "ttl", "common_name", "alt_names"],
    "/v1/pki/trust-anchors": ["name", "certificate_pem"],
}


async def test_no_body_field_value_makes_a_5xx(api, admin):
    h = await make_hierarchy(api, admin, key_type="ec")
    csr = make_csr("a.example.com")
    base: dict[str, dict[str, Any]] = {
        # key_type ec keeps generated CA keys cheap; valid defaults so one bad field is what is tested
        "/v1/pki/ca": {"name": "fz", "common_name": "Fz", "ca_type": "intermediate", "parent_ca_id": h["inter"]["id"],
                       "key_type": "ec"},
        "/v1/pki/roles": {"name": "fz", "ca_id": h["inter"]["id"], "max_ttl": "24h", "allowed_domains": ["example.com"]},
        "/v1/pki/issue/web-a": {"common_name": "a.example.com"},
        "/v1/pki/sign/web-a": {"csr_pem": csr},
        "/v1/pki/csr": {"role": "web-a", "csr_pem": csr},
        "/v1/pki/trust-anchors": {"name": "fz", "certificate_pem": "x"},
    }
    cases = [(url, f) for url, fields in FIELDS.items() for f in fields]
    revoke_urls = [f"/v1/pki/ca/{h['root']['id']}/revoke", "/v1/pki/certificates/cert_x/revoke"]

    @settings(max_examples=300, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=st.sampled_from(cases), value=JSON)
    def run(case: tuple[str, str], value: Any) -> None:
        pending.append((case, value))

    pending: list[tuple[tuple[str, str], Any]] = []
    run()  # collect the examples (Hypothesis drives a sync function; the requests are sent below)
    for (url, field), value in pending:
        r = await api.post(url, headers=admin, json={**base[url], field: value})
        assert r.status_code < 500, (url, field, value, r.text)
        assert r.headers["content-type"].startswith("application/json")
    for value in [[], {}, 1, "x" * 5000, ["key_compromise"]]:  # (null means unspecified: a real revocation)
        for url in revoke_urls:
            r = await api.post(url, headers=admin, json={"reason": value})
            assert r.status_code < 500, (url, value, r.text)
    # the hierarchy is still healthy afterwards
    await ok(await api.post("/v1/pki/issue/web-a", headers=admin, json={"common_name": "ok.example.com"}))
