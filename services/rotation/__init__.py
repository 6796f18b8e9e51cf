"""Rotation and expiry (spec lifecycle.md §1, §2; docs/rotation.md).

* ``policies``: rotation-policy CRUD, validation, attach/detach, history, the due list.
* ``schedule``: workflow ids, signal-with-start of the per-secret workflow, the timer plan.
* ``rotate``: the secrets write-path hook (a rotation is a version write with an idempotency key) and the
  auto-generating rotation itself.
* ``expiry``: the ``secret.expiring`` / ``secret.expired`` sweeper.
* ``outside``: rotation through an outside system (create, store as pending, test, promote).
* ``routing``: a policy's ``webhook_ids``: its rotation events go to those webhooks (the relay asks).
"""
