"""Errors of the embedded stack launcher; each names the server and, where there is one, its log file."""

from __future__ import annotations

from pathlib import Path

from finpulse.exceptions import FinpulseError


class StackError(FinpulseError):
    """Base class of embedded-stack errors."""

    exit_code = 4


class PortInUseError(StackError):
    """A server's port is already taken by a process the stack does not own."""

    def __init__(self, server: str, host: str, port: int) -> None:
        super().__init__(
            f"{server}: port {host}:{port} is already in use by another process; "
            f"stop it or choose another port (FINPULSE_STACK__{server.upper()}_PORT)"
        )
        self.server, self.host, self.port = server, host, port


class BinaryNotFoundError(StackError):
    """A server's executable is not installed."""

    def __init__(self, server: str, what: str, hint: str) -> None:
        super().__init__(f"{server}: {what} not found; {hint}")
        self.server = server


class ServerStartError(StackError):
    """A server died during start-up or did not become healthy in time."""

    def __init__(self, server: str, reason: str, log_file: Path, log_tail: str = "") -> None:
        message = f"{server}: {reason} (log: {log_file})"
        if log_tail:
            message += "; last log lines: " + " | ".join(line for line in log_tail.splitlines() if line.strip())
        super().__init__(message)
        self.server, self.reason, self.log_file = server, reason, log_file


class ServerStopError(StackError):
    """A server's processes were still alive after SIGKILL."""

    def __init__(self, server: str, pids: list[int]) -> None:
        super().__init__(f"{server}: processes {pids} survived SIGKILL")
        self.server, self.pids = server, pids


class UnknownServerError(StackError):
    """A command named a server the stack does not have."""
