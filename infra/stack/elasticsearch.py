"""osmem, an in-memory OpenSearch/Elasticsearch-API server, from the osmem-server package."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

from finpulse.infra.stack.base import Server
from finpulse.infra.stack.exceptions import BinaryNotFoundError


def osmem_binary() -> Path:
    """The bundled ``osmem-server`` executable (``$OSMEM_SERVER_BIN`` wins, as in osmem-server)."""
    try:
        import osmem_server
    except ModuleNotFoundError:
        raise BinaryNotFoundError("elasticsearch", "the osmem-server package", "pip install 'finpulse[embedded]'") from None
    try:
        path = Path(osmem_server.resolve_binary())
    except osmem_server.OsmemError as exc:
        raise BinaryNotFoundError("elasticsearch", "the osmem-server binary", str(exc)) from None
    if not path.is_file():
        raise BinaryNotFoundError("elasticsearch", f"osmem-server binary {path}", "reinstall osmem-server")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o755)
    return path


class ElasticsearchServer(Server):
    name = "elasticsearch"

    @property
    def port(self) -> int:
        return self.stack.elasticsearch_port

    def prepare(self) -> None:
        self._binary = osmem_binary()

    def environment(self) -> dict[str, str]:
        env = super().environment()
        if self.stack.elasticsearch_gogc is not None:
            env["GOGC"] = str(self.stack.elasticsearch_gogc)
        return env

    def command(self) -> list[str]:
        # --no-stdin-watch: outlive the CLI that started it; --no-ja: no Japanese dictionary (faster start).
        return [str(self._binary), "--addr", f"{self.host}:{self.port}", "--no-stdin-watch", "--no-ja"]

    def probe(self) -> str | None:
        try:
            with urllib.request.urlopen(self.url() + "/", timeout=2.0) as resp:
                info = json.loads(resp.read())
        except (OSError, ValueError) as exc:
            return f"GET / failed: {exc}"
        if not isinstance(info, dict) or "version" not in info:
            return f"GET / answered {info!r}"
        return None

    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
