"""The user CLI (``scaivault auth``, ``secrets``, ``policies``, ``audit tail``, ``pki``, ``leases``, ``dynamic``,
``rotation``, ``webhooks``, ``subscriptions``, ``identity``, ``completion``): commands built on the Python SDK
(``scaivault_sdk``) that import nothing from the server, so they start fast and need no server settings."""
