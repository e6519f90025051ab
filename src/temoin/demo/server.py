"""The platform served over real HTTP from a background thread (the demo, end-to-end tests)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn
from fastapi import FastAPI

from temoin.web.hardening import access_log_config


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class BackgroundServer:
    """uvicorn in a daemon thread; `start` returns once `/api/v1/platform` answers."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port(host)
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=self.port,
                log_level="warning",
                timeout_graceful_shutdown=3,
                proxy_headers=False,
                # As `temoin serve`: content grants and tokens travel in query strings, never in the access log.
                log_config=access_log_config(),
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="temoin-server")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                break
            try:
                httpx.get(f"{self.url}/api/v1/platform", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"the server did not start on {self.url}: is the port taken? try another --port")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
