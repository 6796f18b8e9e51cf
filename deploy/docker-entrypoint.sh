#!/bin/sh
# Container entrypoint (runs under tini). Prepares per-start state, then replaces itself with the
# command, so the command receives SIGTERM directly.
set -eu

# prometheus-client multiprocess mode keeps one file per process; files left over from a previous run
# of this container would be counted again. Empty the directory (it may be a mount point) and recreate.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
fi

exec "$@"
