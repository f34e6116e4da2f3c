"""`ssvae dashboard` as started from a shell: loopback by default, a warning elsewhere, and a
password when asked for."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

SSVAE = str(Path(sys.executable).parent / "ssvae")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_a_public_host_warns_and_basic_auth_without_a_password_stops(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SSVAE_DASHBOARD_PASSWORD"}
    result = subprocess.run(
        [SSVAE, "dashboard", "--host", "0.0.0.0", "--basic-auth", "--artifacts", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert "warning: listening on 0.0.0.0: other machines can reach" in result.stderr
    assert "error: --basic-auth needs a password" in result.stderr
    assert "SSVAE_DASHBOARD_PASSWORD" in result.stderr


def test_basic_auth_sends_visitors_to_the_login_page(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "SSVAE_DASHBOARD_PASSWORD": "s3cret", "HOME": str(tmp_path)}
    process = subprocess.Popen(
        [SSVAE, "dashboard", "--port", str(port), "--basic-auth", "--artifacts", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        deadline = time.monotonic() + 90
        status, location = 0, ""
        while time.monotonic() < deadline and not status:
            try:
                opener.open(f"http://127.0.0.1:{port}/", timeout=5)
                status = 200
            except urllib.error.HTTPError as error:
                status, location = error.code, error.headers.get("Location", "")
            except OSError:
                assert process.poll() is None, "the server exited"
                time.sleep(0.3)
        assert status == 302
        assert "login" in location
    finally:
        process.terminate()
        process.wait(timeout=20)
