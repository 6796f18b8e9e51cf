"""The internal PKI (issue 15, spec lifecycle.md §3.1-3.4, §3.8; docs/pki.md)."""
