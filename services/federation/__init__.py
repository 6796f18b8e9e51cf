"""Federation with external secret stores (HashiCorp Vault / OpenBao KV v2, AWS Secrets Manager) in proxy and
sync modes. Spec lifecycle.md §6; decisions in docs/federation.md."""
