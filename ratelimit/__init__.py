"""Per-identity token buckets in Redis (spec core.md §9)."""
