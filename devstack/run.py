"""``python -m devstack.run`` (what ``make dev`` runs): the whole ScaiVault stack on loopback.

State lives in ``.scaivault-dev/`` under the repo root (git-ignored): generated secrets, the local KMS
key, PostgreSQL/Temporal data (reused by the next run), child logs in ``logs/<name>.log`` and
``stack.json`` describing the running stack. Ctrl-C / SIGTERM stops every child in reverse start
order, each by its own pid.

Flags: ``--check`` starts, waits until ready, prints and stops (CI smoke test); ``--services-only``
starts only PostgreSQL, Redis and Temporal (benchmarks).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import importlib.util
import json
import os
import secrets
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from devstack import services as svc
from devstack.acme_stack import PebbleStack
from devstack.admin_token import (
    ensure_dev_admin_policy,
    mint_admin_token,
    register_scaikey_webhook,
    sync_identities,
)
from devstack.services import say

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("SCAIVAULT_DEV_STATE_DIR") or REPO_ROOT / ".scaivault-dev")
TENANT_ID = "tnt_acme_prod"
API_READY_TIMEOUT = 90.0

DEFAULT_PORTS = {
    "api": 8200,
    "temporal": 7233,
    "temporal_ui": 8233,
    "pg": 5433,
    "redis": 6380,
    "scaikey": 8900,
}
SECRET_NAMES = (
    "TOKEN_HMAC_KEY",
    "AUDIT_HMAC_KEY",
    "TEMPORAL_CODEC_KEY",
    "SCAIKEY_CLIENT_SECRET",
    "SCAIKEY_WEBHOOK_SECRET",
)


class Shutdown(Exception):
    """Raised from the signal handler to unwind into the stop-everything path."""


def _random_b64(nbytes: int = 32) -> str:
    return base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` (mode 0600) atomically: readers (scripts polling stack.json) never see a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def load_or_create_secrets(state_dir: Path) -> dict[str, str]:
    """Generate secrets.json and kms.key on first run, reuse them afterwards (both mode 0600)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    secrets_file = state_dir / "secrets.json"
    kms_file = state_dir / "kms.key"
    data: dict[str, str] = {}
    if secrets_file.exists():
        data = json.loads(secrets_file.read_text())
    changed = False
    for name in SECRET_NAMES:
        if not data.get(name):
            data[name] = _random_b64()
            changed = True
    if changed:
        _write_private(secrets_file, json.dumps(data, indent=2) + "\n")
    if not kms_file.exists() or not kms_file.read_text().strip():
        _write_private(kms_file, _random_b64() + "\n")
    data["KMS_LOCAL_KEY_FILE"] = str(kms_file)
    return data


def resolve_ports(names: list[str]) -> dict[str, int]:
    """Ports from SCAIVAULT_DEV_<NAME>_PORT or the defaults, falling back to free ports when taken."""
    return {name: svc.pick_port(DEFAULT_PORTS[name], f"SCAIVAULT_DEV_{name.upper()}_PORT") for name in names}


# --------------------------------------------------------------------------------------------- stale pids


def _stop_stale(state_dir: Path) -> None:
    """Stop processes a previous run recorded in stack.json that are still alive (same pid and start time)."""
    pg_dir = state_dir / "data" / "postgres"
    if (pg_dir / "pgdata" / "postmaster.pid").exists():
        svc.stop_stale_postgres(pg_dir, log_path=state_dir / "logs" / "postgres.log")
    stack_file = state_dir / "stack.json"
    try:
        previous = json.loads(stack_file.read_text())
    except (OSError, ValueError):
        return
    procs = previous.get("processes") or {}
    for name in reversed(list(procs)):
        info = procs[name]
        pid, ticks = info.get("pid"), info.get("start_ticks")
        if name == "postgres" or not isinstance(pid, int):
            continue  # handled above through postmaster.pid
        if svc.pid_alive(pid) and ticks is not None and svc.process_start_ticks(pid) == ticks:
            say(f"[devstack] stopping {name} (pid {pid}) left over from a previous run")
            svc.terminate_pid(pid, timeout=10)


# --------------------------------------------------------------------------------------------- stack


@dataclass
class DevStack:
    state_dir: Path
    services_only: bool = False

    def __post_init__(self) -> None:
        self.handles: list[svc.Handle] = []
        self.logs = self.state_dir / "logs"
        self.data = self.state_dir / "data"
        self.info: dict[str, object] = {}

    # -- helpers ---------------------------------------------------------------------------
    def _add(self, handle: svc.Handle) -> svc.Handle:
        handle.extra["start_ticks"] = str(svc.process_start_ticks(handle.pid) or "")
        self.handles.append(handle)
        self._write_stack_json(running=True)
        return handle

    def _log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def _write_stack_json(self, running: bool) -> None:
        doc = dict(self.info)
        doc["running"] = running
        doc["logs"] = str(self.logs)
        doc["pids"] = {h.name: h.pid for h in self.handles}
        doc["processes"] = {
            h.name: {"pid": h.pid, "start_ticks": int(h.extra["start_ticks"] or 0) or None}
            for h in self.handles
        }
        _write_private(self.state_dir / "stack.json", json.dumps(doc, indent=2) + "\n")

    # -- start -----------------------------------------------------------------------------
    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        _stop_stale(self.state_dir)
        names = ["pg", "redis", "temporal"]
        if not self.services_only:
            names += ["temporal_ui", "scaikey", "api"]
        ports = resolve_ports(names)

        pg = self._add(
            svc.start_postgres(self.data / "postgres", ports["pg"], log_path=self._log("postgres"))
        )
        redis = self._add(svc.start_redis(self.data / "redis", ports["redis"], log_path=self._log("redis")))
        temporal = self._add(
            svc.start_temporal(
                self.data / "temporal",
                ports["temporal"],
                ports.get("temporal_ui"),
                log_path=self._log("temporal"),
            )
        )
        self.info.update(
            database_url=pg.url,
            redis_url=redis.url,
            temporal_address=temporal.address,
            temporal_ui_url=temporal.url or None,
        )
        self._write_stack_json(running=True)
        if self.services_only:
            return

        secrets_ = load_or_create_secrets(self.state_dir)
        scaikey_url = self._start_scaikey(ports["scaikey"], secrets_["SCAIKEY_CLIENT_SECRET"])
        api_url = f"http://127.0.0.1:{ports['api']}"
        env = app_env(secrets_, pg.url, redis.url, temporal.address, scaikey_url, api_url)
        self.info.update(api_url=api_url, scaikey_url=scaikey_url, tenant_id=TENANT_ID)
        pebble = self._start_pebble(ports["api"], env)  # docs/acme.md: ACME against a local CA

        worker = self._add(
            svc.start_process(
                "worker",
                [sys.executable, "-m", "worker"],
                env,
                self._log("worker"),
                svc.log_says(self._log("worker"), svc.WORKER_READY_TEXT),
                timeout=60,
                cwd=REPO_ROOT,
            )
        )
        self._start_api(ports["api"], env)
        if not worker.alive():
            raise svc.ServiceStartError(
                "worker exited while the API was starting\n--- last lines of the log ---\n"
                + worker.log_tail()
            )
        self.info["admin_token"] = mint_admin_token(scaikey_url) if scaikey_url else None
        if self.info["admin_token"]:
            ensure_dev_admin_policy(str(self.info["api_url"]), str(self.info["admin_token"]))
        if scaikey_url:
            # ScaiKey -> ScaiVault by webhook, signed with the generated SCAIKEY_WEBHOOK_SECRET (docs/guide)
            self.info["scaikey_webhook_id"] = register_scaikey_webhook(
                scaikey_url, secrets_["SCAIKEY_CLIENT_SECRET"], api_url, secrets_["SCAIKEY_WEBHOOK_SECRET"])
            if self.info["scaikey_webhook_id"] is None:
                say("[devstack] could not register the ScaiKey webhook; ScaiKey changes arrive by sync only")
            # every seeded partner and tenant mirrored (with its name) before the stack says it is up
            self.info["identity_synced"] = sync_identities(api_url, scaikey_url)
            if not self.info["identity_synced"]:
                say("[devstack] the start-up identity sync did not succeed; see logs/worker.log")
        if pebble is not None and self.info["admin_token"]:
            from devstack.acme_stack import seed_dev

            try:
                self.info.update(seed_dev(api_url, str(self.info["admin_token"]), pebble))
            except Exception as exc:  # the stack is usable without the ACME seed
                say(f"[devstack] could not seed the ACME account / DNS provider: {exc}")
        self._write_stack_json(running=True)

    def _start_pebble(self, api_port: int, env: dict[str, str]) -> PebbleStack | None:
        """Pebble + pebble-challtestsrv (validating http-01 on the API port); missing binaries: say how, go on."""
        from devstack.acme_stack import start_pebble

        try:
            stack = start_pebble(self.data / "pebble", http_port=api_port)
        except svc.ServiceStartError as exc:
            say(f"[devstack] ACME disabled: {exc}")
            return None
        for h in stack.handles:
            self._add(h)
        env["ACME_CA_BUNDLE"] = stack.ca_bundle
        self.info.update(pebble_directory=stack.directory_url, pebble_roots=f"{stack.management_url}/roots/0",
                         challtestsrv_url=stack.challtestsrv_url)
        return stack

    def _start_scaikey(self, port: int, client_secret: str) -> str:
        if importlib.util.find_spec("scaikey_emulator.__main__") is None:
            say("[devstack] scaikey_emulator is not in the repo yet; starting without it")
            return ""
        url = f"http://127.0.0.1:{port}"
        argv = [
            sys.executable, "-m", "scaikey_emulator", "--host", "127.0.0.1", "--port", str(port),
            "--seed", "dev", f"--scaivault-client-secret={client_secret}",
            "--admin-token-lifetime", "2592000",
        ]  # fmt: skip
        self._add(
            svc.start_process(
                "scaikey",
                argv,
                dict(os.environ, PYTHONUNBUFFERED="1"),
                self._log("scaikey"),
                svc.http_ready(url + "/_emulator/health"),
                timeout=30,
                url=url,
                cwd=REPO_ROOT,
            )
        )
        return url

    def _start_api(self, port: int, env: dict[str, str]) -> None:
        workers = max(1, int(os.environ.get("SCAIVAULT_DEV_API_WORKERS", "2") or "2"))
        api_env = dict(env)
        if workers > 1:
            prom_dir = self.state_dir / "prometheus-multiproc"
            shutil.rmtree(prom_dir, ignore_errors=True)
            prom_dir.mkdir(parents=True)
            api_env["PROMETHEUS_MULTIPROC_DIR"] = str(prom_dir)
        url = f"http://127.0.0.1:{port}"
        argv = [
            sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--no-proxy-headers",
        ]  # fmt: skip
        try:
            self._add(
                svc.start_process(
                    "api",
                    argv,
                    api_env,
                    self._log("api"),
                    svc.http_ready(url + "/v1/health/ready"),
                    timeout=API_READY_TIMEOUT,
                    url=url,
                    cwd=REPO_ROOT,
                )
            )
        except svc.ServiceStartError as exc:
            tails = [f"--- {h.name} ({h.log_path}) ---\n{h.log_tail(15)}" for h in self.handles]
            raise svc.ServiceStartError(str(exc) + "\n\nOther logs:\n" + "\n".join(tails)) from exc

    # -- stop ------------------------------------------------------------------------------
    def stop(self) -> None:
        if not self.handles:
            return
        say("[devstack] stopping " + ", ".join(h.name for h in reversed(self.handles)))
        svc.stop_all(self.handles, timeout=15)
        self._write_stack_json(running=False)
        self.handles.clear()

    def dead_children(self) -> list[svc.Handle]:
        return [h for h in self.handles if not h.alive()]


def app_env(
    secrets_: dict[str, str],
    database_url: str,
    redis_url: str,
    temporal_address: str,
    scaikey_url: str,
    base_url: str,
) -> dict[str, str]:
    """Environment for the API and the worker (on top of the current environment)."""
    env = dict(os.environ)
    env.update(
        ENV="dev",
        PYTHONUNBUFFERED="1",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        TEMPORAL_ADDRESS=temporal_address,
        TEMPORAL_NAMESPACE="default",
        KMS_PROVIDER="local",
        KMS_LOCAL_KEY_FILE=secrets_["KMS_LOCAL_KEY_FILE"],
        SCAIKEY_BASE_URL=scaikey_url or "http://127.0.0.1:9",
        SCAIKEY_CLIENT_ID="scaivault",
        SCAIKEY_AUDIENCE="scaivault",
        BASE_URL=base_url,
        LOG_LEVEL="info",
    )
    for name in SECRET_NAMES:
        env[name] = secrets_[name]
    return env


def banner(info: dict[str, object], services_only: bool) -> str:
    lines = ["", "ScaiVault dev stack is up" if not services_only else "ScaiVault dev services are up"]
    for key in ("api_url", "temporal_address", "temporal_ui_url", "database_url", "redis_url", "scaikey_url"):
        if info.get(key):
            lines.append(f"  {key:<17} {info[key]}")
    if not services_only:
        token = info.get("admin_token")
        lines.append(f"  {'tenant_id':<17} {info.get('tenant_id')}")
        if token:
            lines.append(f"  {'admin_token':<17} {token}")
            lines.append(f"  try: export TOKEN=$(jq -r .admin_token {STATE_DIR / 'stack.json'})")
            lines.append(
                f'       curl -s -H "Authorization: Bearer $TOKEN" {info.get("api_url")}/v1/auth/whoami'
            )
            lines.append(
                f'       curl -s -H "Authorization: Bearer $TOKEN" "{info.get("api_url")}/v1/secrets?limit=10"'
            )
            if info.get("acme_account_id"):
                lines.append(  # docs/acme.md: a certificate from the local Pebble in one curl
                    f'       curl -s -H "Authorization: Bearer $TOKEN" -H "content-type: application/json"'
                    f' {info.get("api_url")}/v1/pki/acme/orders -d'
                    f' \'{{"account_id":"{info["acme_account_id"]}","domains":["app.dev.test","*.dev.test"]}}\'')
        else:
            lines.append("  admin_token       (not available: the ScaiKey emulator did not issue one)")
            lines.append(f"  try: curl {info.get('api_url')}/v1/health/ready")
    lines.append(f"  stack file        {STATE_DIR / 'stack.json'}   logs: {STATE_DIR / 'logs'}")
    return "\n".join(lines) + "\n"


def _install_signal_handlers() -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Shutdown(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


def _block(stack: DevStack) -> None:
    reported: set[str] = set()
    while True:
        time.sleep(1.0)
        for handle in stack.dead_children():
            if handle.name not in reported:
                reported.add(handle.name)
                say(
                    f"[devstack] {handle.name} (pid {handle.pid}) exited; last log lines:\n{handle.log_tail(20)}",
                    err=True,
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.run", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="start, wait until ready, print, stop")
    parser.add_argument("--services-only", action="store_true", help="only PostgreSQL, Redis and Temporal")
    args = parser.parse_args(argv)

    lock = _acquire_lock(STATE_DIR)
    if lock is None:
        return 2
    stack = DevStack(STATE_DIR, services_only=args.services_only)
    _install_signal_handlers()
    try:
        stack.start()
        say(banner(stack.info, args.services_only))
        if args.check:
            return 0
        say("[devstack] press Ctrl-C to stop")
        _block(stack)
    except Shutdown:
        return 0
    except svc.ServiceStartError as exc:
        say(f"[devstack] start failed: {exc}", err=True)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        stack.stop()
        lock.close()
    return 0


def _acquire_lock(state_dir: Path) -> TextIO | None:
    """One devstack.run per state dir: a second one would fight over ports, data and stack.json."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fh = open(state_dir / "run.lock", "a+")  # held (and locked) for the life of the process
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        owner = fh.read().strip() or "?"
        fh.close()
        say(
            f"[devstack] another devstack.run (pid {owner}) is already using {state_dir}; stop it first",
            err=True,
        )
        return None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


if __name__ == "__main__":
    sys.exit(main())
