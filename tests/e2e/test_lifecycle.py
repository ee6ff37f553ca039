"""Daemon lifecycle through its sockets: sd_notify messages, refusing bad config, a busy port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_daemon import BIN, free_port

pytestmark = pytest.mark.e2e


def base_env(tmp_path: Path, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "VENTANILLA_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'v.db'}",
        "VENTANILLA_HTTP__PORT": str(port),
        "VENTANILLA_INTAKE__ATTACHMENTS_DIR": str(tmp_path / "att"),
    }
    env.pop("VENTANILLA_CONFIG", None)
    env.pop("NOTIFY_SOCKET", None)
    return env


def test_systemd_ready_watchdog_stopping(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(20)
    env = base_env(tmp_path, free_port())
    env["NOTIFY_SOCKET"] = str(notify_path)
    env["WATCHDOG_USEC"] = "600000"  # 0.6 s: pings every 0.2 s
    proc = subprocess.Popen([str(BIN), "serve"], env=env, stderr=subprocess.PIPE)
    try:
        received: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and received.count("WATCHDOG=1") < 2:
            received.extend(sock.recv(4096).decode().split("\n"))
        assert "READY=1" in received
        assert received.count("WATCHDOG=1") >= 2
        # READY comes only once the listener is up: the port answers now.
        with socket.create_connection(("127.0.0.1", int(env["VENTANILLA_HTTP__PORT"])), 2):
            pass
        proc.send_signal(signal.SIGTERM)
        stopping = False
        while not stopping:
            stopping = "STOPPING=1" in sock.recv(4096).decode().split("\n")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_serve_refuses_a_bad_config(tmp_path: Path) -> None:
    env = base_env(tmp_path, free_port())
    env["VENTANILLA_HTTP__PORTT"] = "1"
    env["VENTANILLA_SMTP__PROTOCOL"] = "pop3"
    done = subprocess.run([str(BIN), "serve"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "http.portt: unknown key" in done.stderr
    assert "smtp.protocol" in done.stderr


def test_busy_port_stops_with_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = base_env(tmp_path, port)
        env["VENTANILLA_DAEMON__LOG_FORMAT"] = "text"
        done = subprocess.run(
            [str(BIN), "serve"], env=env, capture_output=True, text=True, timeout=30
        )
    assert done.returncode == 1
    assert "cannot listen" in done.stderr and str(port) in done.stderr
    assert "Traceback" not in done.stderr


def test_running_as_module_matches_script() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "config.cli", "--help"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and "serve" in done.stdout
