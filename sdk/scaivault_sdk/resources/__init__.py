"""One module per API area. Each resource takes the shared ``Transport`` and returns models.

Adding an area (rotation, PKI, leases, federation as they land) is one new module here with a
``Resource`` subclass, one attribute on ``ScaiVaultClient`` and one line in ``SyncScaiVaultClient``.
"""
