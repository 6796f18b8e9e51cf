"""Managed certificates: ACME accounts, orders, challenges, DNS providers and auto-renewal (docs/acme.md)."""
