"""The secrets area (spec core.md §6, §10.2, §10.3, §13; docs/secrets.md): versioned, envelope-encrypted values
behind /v1/secrets.

* ``service``: the rules: ``SecretsService`` (read, write, versions, delete, restore), the ``setup_secrets`` hook,
  the ``purge_deleted_secrets`` sweeper.
* ``input``: validation of everything a client sends (pure, no I/O).
* ``row_cache``: the per-process cache of ciphertext rows for the read hot path.
* ``access_tracker``: ``last_accessed_at`` batching, off the read path.
* ``writes``: server-side generation's write (``write_generated``, used by /v1/secret-policies/{id}/generate).

Nothing is re-exported: callers import the module they use.
"""
