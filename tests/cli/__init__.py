"""User-CLI tests against the real API."""
