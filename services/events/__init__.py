"""The events area (spec lifecycle.md §5, core.md §13; docs/events.md): the transactional outbox's events leave
through the relay to webhooks and subscriptions.

* ``catalogue``: the event catalogue and the type/filter matching rules shared by webhooks and subscriptions.
* ``relay``: the outbox relay (outbox rows -> webhook delivery workflows + subscription polling buffers).
* ``visibility``: which events a subscription owner may receive (live ``read``/``list`` on the event's path).
* ``webhooks``: webhook rules behind /v1/webhooks: CRUD, secret rotation, delivery log, test send, redelivery.
* ``webhook_secrets``: webhook signing secrets at rest.
* ``webhook_sender``: one signed webhook POST (delivery activity and test endpoint).
* ``webhook_urls``: webhook URL safety (SSRF checks at create/update and at every attempt).
* ``subscriptions``: subscriptions behind /v1/subscriptions: path-scoped feeds, webhook or long-poll delivery.
* ``violations``: ``policy.violation`` events for denied requests (best effort, deduplicated, capped).

Nothing is re-exported: callers import the module they use.
"""
