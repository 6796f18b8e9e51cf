"""SQL of the identity area (docs/identity.md): the cache of ScaiKey users, groups and memberships, the
directory (partners, tenants), admin roles, sync runs and webhook idempotency. One module each; callers import
the module they use (nothing is re-exported here)."""
