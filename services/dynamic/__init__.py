"""Dynamic credentials (lifecycle.md §4; docs/dynamic.md): engines, roles, leases, the target drivers
(postgres.py, aws.py) and durable, rate-limited revocation (revocation.py)."""
