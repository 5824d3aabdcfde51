"""Alerta (alerta-server) under gunicorn, on the embedded PostgreSQL, with authentication required.

An admin API key is generated once, kept in ``<state_dir>/alerta/api_key`` (mode 0600) and put
into Alerta's database with ``alertad key`` at every start (idempotent: an existing key is kept).
The API is served under ``/api`` (gunicorn's ``SCRIPT_NAME``), as in Alerta's own images.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from finpulse.infra.stack.base import Server
from finpulse.infra.stack.exceptions import BinaryNotFoundError, ServerStartError
from finpulse.infra.stack.postgres import PostgresServer
from finpulse.settings import StackSettings

ADMIN_USER = "admin@finpulse.local"
SCRIPT_NAME = "/api"
# Alerta reads these from the environment before its config file: keep the file authoritative.
_ALERTA_ENV_KEYS = ("DATABASE_URL", "DATABASE_NAME", "AUTH_REQUIRED", "ADMIN_USERS", "SECRET_KEY", "DEBUG",
                    "BASE_URL", "AUTH_PROVIDER", "PLUGINS", "MONGO_URI", "MONGODB_URI", "MONGOHQ_URL", "MONGOLAB_URI")


def secret_file(path: Path, nbytes: int) -> str:
    """The secret in ``path``, created (0600) on first use."""
    if path.is_file():
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_urlsafe(nbytes)
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value


class AlertaServer(Server):
    name = "alerta"

    def __init__(self, stack: StackSettings, postgres: PostgresServer) -> None:
        super().__init__(stack)
        self.postgres = postgres

    @property
    def port(self) -> int:
        return self.stack.alerta_port

    @property
    def config_file(self) -> Path:
        return self.data_dir / "alertad.conf"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "api_key"

    def api_key(self) -> str:
        return secret_file(self.key_file, 30)

    def prepare(self) -> None:
        for module, package in (("alerta.app", "alerta-server"), ("gunicorn", "gunicorn"), ("psycopg2", "psycopg2-binary")):
            try:
                __import__(module)
            except ModuleNotFoundError:
                raise BinaryNotFoundError(self.name, f"the {module} module", f"pip install {package}") from None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        secret_key = secret_file(self.data_dir / "secret_key", 32)
        config = {
            "DEBUG": False,
            "DATABASE_URL": self.postgres.url(),
            "DATABASE_NAME": "alerta",
            "AUTH_REQUIRED": True,
            "ADMIN_USERS": [ADMIN_USER],
            "SIGNUP_ENABLED": False,
            "SECRET_KEY": secret_key,
            "LOG_LEVEL": "WARNING",
        }
        self.config_file.touch(mode=0o600)
        self.config_file.write_text("".join(f"{k} = {v!r}\n" for k, v in config.items()))
        self._create_key()

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _ALERTA_ENV_KEYS}
        env["ALERTA_SVR_CONF_FILE"] = str(self.config_file)
        env["SCRIPT_NAME"] = SCRIPT_NAME
        env["PYTHONUNBUFFERED"] = "1"  # access log lines reach the log file as they happen
        return env

    def _create_key(self) -> None:
        """Store the admin key in Alerta's database (``alertad key``; keeps it when it is there)."""
        argv = [sys.executable, "-c", "import sys; from alerta.commands import cli; sys.exit(cli())",
                "key", "--username", ADMIN_USER, "--key", self.api_key(), "--text", "finpulse embedded stack"]
        result = subprocess.run(argv, env=self.environment(), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=60, check=False)
        with self.log_file.open("a") as log:
            log.write(result.stderr)
        if result.returncode != 0 or self.api_key() not in result.stdout:
            raise ServerStartError(self.name, f"`alertad key` failed (code {result.returncode}): "
                                   f"{(result.stdout + result.stderr).strip()[-500:]}", self.log_file)

    def command(self) -> list[str]:
        argv = [sys.executable, "-m", "gunicorn", "alerta.app:create_app()",
                "--bind", f"{self.host}:{self.port}", "--workers", "2",
                "--timeout", "30", "--graceful-timeout", "5", "--access-logfile", "-"]
        if _gunicorn_has_control_socket():
            argv.append("--no-control-socket")  # else every gunicorn shares ~/.gunicorn/gunicorn.ctl
        return argv

    def _get(self, path: str, key: str | None) -> tuple[int, str]:
        request = urllib.request.Request(self.url() + path)
        if key is not None:
            request.add_header("Authorization", f"Key {key}")
        try:
            with urllib.request.urlopen(request, timeout=3.0) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def probe(self) -> str | None:
        try:
            code, body = self._get("/management/healthcheck", None)
            if code != 200:
                return f"healthcheck answered {code}: {body[:200]}"
            code, body = self._get("/alerts?page-size=1", self.api_key())
            if code != 200 or json.loads(body).get("status") != "ok":
                return f"GET /alerts with the API key answered {code}: {body[:200]}"
            code, _ = self._get("/alerts?page-size=1", None)
            if code != 401:
                return f"GET /alerts without a key answered {code}, not 401: authentication is off"
        except (OSError, ValueError) as exc:
            return f"request failed: {exc}"
        return None

    def url(self) -> str:
        return f"http://{self.host}:{self.port}{SCRIPT_NAME}"


def _gunicorn_has_control_socket() -> bool:
    from gunicorn.config import KNOWN_SETTINGS

    return any(setting.name == "control_socket" for setting in KNOWN_SETTINGS)
