"""Crash tests reuse the event tests' fixtures (API client with an admin token, receiver, emit())."""

from tests.integration.events.conftest import (  # noqa: F401 - pytest fixtures, registered by import
    event_settings,
    hook_secret,
    receiver_factory,
    stack,
    stack_factory,
)
