"""Helpers of the operations tests: JSON log lines, scraping the runner's metrics, runners with a
metrics listener, reading and editing audit trail files."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from alikms.shared import audit
from tests import support


def json_lines(text: str) -> list[dict]:
    """The JSON objects among the lines of `text` (every line must be one)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def events(text: str, name: str) -> list[dict]:
    return [line for line in json_lines(text) if line.get("event") == name]


def start(server_factory, env: dict | None = None, workers: int = 1) -> tuple[support.Server, int]:
    """A runner with its metrics listener on a free port: (server, metrics port)."""
    port = support.free_port()
    srv = server_factory({"KMS_METRICS_PORT": str(port), **(env or {})}, workers=workers)
    return srv, port


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(port: int) -> dict[tuple, float]:
    """/metrics read by the Prometheus project's own parser: {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = get(port, "/metrics")
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def value(samples: dict[tuple, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def health(port: int) -> tuple[int, dict]:
    status, body = get(port, "/healthz")
    return status, json.loads(body)


def stop(srv: support.Server) -> str:
    """Stop the runner; its stderr."""
    srv.stop()
    return srv.proc.stderr.read().decode()


def trail_lines(data_dir: Path) -> dict[str, list[bytes]]:
    """file name -> its lines (with their newlines)."""
    return {p.name: p.read_bytes().splitlines(keepends=True) for p in audit.files(data_dir)}


def rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def ring_of(data_dir: Path) -> dict[str, bytes]:
    """The root keys of a runner's data directory (for verifying its trail)."""
    from alikms.shared.config import parse_root_keys

    return parse_root_keys((data_dir / "root.key").read_text())
