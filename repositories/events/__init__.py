"""SQL of the events area (docs/events.md): the transactional outbox, webhooks with their delivery log, and
subscriptions with their polling buffers. One module each; callers import the module they use (nothing is
re-exported here)."""
