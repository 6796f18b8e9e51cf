"""SQL of the internal PKI (issue 15). Every tenant-owned query takes ``tenant_id`` explicitly."""
