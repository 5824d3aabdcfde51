"""Process plumbing of the embedded stack: spawn in a new session, pid records, ports, readiness, stop.

Every server runs as the leader of its own process group (``start_new_session``), so stopping it
signals the whole group and nothing it forked is left behind.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from finpulse.infra.stack.exceptions import ServerStartError, ServerStopError

logger = logging.getLogger(__name__)

POLL_S = 0.05


@dataclass(frozen=True)
class PidRecord:
    """What ``<state_dir>/<server>.pid`` holds about a running server."""

    name: str
    pid: int
    create_time: float
    host: str
    port: int
    started_at: float
    startup_s: float
    log_file: str

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".pid.tmp")
        tmp.write_text(json.dumps(asdict(self)) + "\n")
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> PidRecord | None:
        """The record in ``path``; None when there is none or it cannot be read (it is then removed)."""
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            logger.warning("removing unreadable pid file %s: %s", path, exc)
            path.unlink(missing_ok=True)
            return None


def reap(pid: int) -> None:
    """Collect ``pid`` if it is a dead child of this process (so it does not linger as a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return


def process_alive(pid: int, create_time: float | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, when given, was created at ``create_time`` (no pid reuse)."""
    reap(pid)
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 0.5
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    members = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound (a listener holds it otherwise)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free now (used by tests and ``--free-ports``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def spawn(
    argv: Sequence[str],
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the leader of a new session, stdout and stderr appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
        log.flush()
        uid_gid: dict[str, int | None] = {"user": None, "group": None}
        if user is not None:
            uid_gid = {"user": user_uid(user), "group": user_group(user)}
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            user=uid_gid["user"],
            group=uid_gid["group"],
            extra_groups=[] if user is not None else None,
        )


def user_uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


def user_group(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def wait_ready(
    name: str,
    proc: subprocess.Popen[bytes],
    check: Callable[[], str | None],
    timeout_s: float,
    log_file: Path,
) -> None:
    """Poll ``check`` (None = healthy, else why not) until healthy; fail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    why = "no answer yet"
    while True:
        code = proc.poll()
        if code is not None:
            raise ServerStartError(name, f"exited with code {code} during start-up", log_file, log_tail(log_file))
        result = check()
        if result is None:
            return
        why = result
        if time.monotonic() > deadline:
            raise ServerStartError(name, f"not healthy after {timeout_s:.0f} s ({why})", log_file, log_tail(log_file))
        time.sleep(POLL_S)


def stop_group(name: str, pid: int, stop_signal: signal.Signals, timeout_s: float) -> None:
    """Send ``stop_signal`` to the process group led by ``pid``; SIGKILL the group after ``timeout_s``."""
    pgid = pid  # every server is a session (and group) leader
    try:
        os.killpg(pgid, stop_signal)
    except ProcessLookupError:
        return
    if _wait_group_gone(pid, pgid, timeout_s):
        return
    left = group_members(pgid)
    logger.warning("%s: %s still running %.0f s after %s, sending SIGKILL", name, left, timeout_s, stop_signal.name)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if not _wait_group_gone(pid, pgid, 5.0):
        raise ServerStopError(name, group_members(pgid))


def _wait_group_gone(pid: int, pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        reap(pid)
        if not group_members(pgid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
