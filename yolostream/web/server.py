"""`WebServer`: uvicorn serving the app from a background thread, on a socket bound up front.

Binding in the caller's thread makes a busy port a clear `ConfigError` at once, and with port 0 the real
port is known before the server starts. The main thread stays free for the pipeline and signals (uvicorn
installs no signal handlers off the main thread).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from typing import Any

from yolostream.errors import ConfigError

log = logging.getLogger("yolostream.web")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebServer:
    """Serves ``app`` on ``host:port`` (0: any free port; see ``port``). `start`, then `stop`."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 8080, hub: Any = None) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise ConfigError(f"server: cannot listen on {host}:{port}: {e}") from None
        self.host, self.port = host, int(self.sock.getsockname()[1])
        self.hub = hub
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=3,  # open live views are ended by the hub first; this bounds the rest
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._main, name="web-server", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _main(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[self.sock])

        asyncio.run(serve())

    def start(self, timeout: float = 30.0) -> WebServer:
        self._thread.start()
        end = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise ConfigError(f"the web server on {self.url} failed to start (see the log)")
            if time.monotonic() > end:
                raise ConfigError(f"the web server on {self.url} did not start within {timeout:g} s")
            time.sleep(0.02)
        if not is_loopback(self.host):
            log.warning("serving on %s, beyond this machine: plain HTTP, so put TLS in front of it", self.host)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """End live views, then shut the server down (idempotent)."""
        if self._loop is not None and self.hub is not None and self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self.hub.close(), self._loop).result(timeout)
            except Exception as e:  # the loop may be closing already
                log.debug("live view close: %s", e)
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self.sock.close()
