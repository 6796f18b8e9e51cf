"""The identity area (scaikey.md; docs/identity.md): the cache of ScaiKey's directory, users and groups, kept
current by sync and by ScaiKey's webhooks.

* ``cache``: the rules behind /v1/identity: visibility, sync triggering and run views, reads, resolve, admin roles.
* ``sync``: the ScaiKey -> identity-cache sync of one tenant, the directory sweep, super-admin election.
* ``webhooks``: the ScaiKey webhook receiver: signature check, normalisation, idempotent apply.

Nothing is re-exported: callers import the module they use.
"""
