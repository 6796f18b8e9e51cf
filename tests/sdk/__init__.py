"""SDK tests against the real API (and httpx.MockTransport for the retry classes)."""
