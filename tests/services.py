"""Real servers on loopback for sink tests: a private mosquitto and a private PostgreSQL cluster.

Each runs from a temporary folder on a free port and can be stopped and restarted on the same port
(to stage an outage). Tests skip only when the server binaries are not installed; the skip reason
says which Debian packages provide them (CI installs them: ``apt-get install -y mosquitto postgresql``).
"""

from __future__ import annotations

import contextlib
import getpass
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

INSTALL_HINT = "install it with: apt-get install -y mosquitto postgresql"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``predicate`` every 20 ms; raise AssertionError naming ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


def postgres_bindir() -> Path | None:
    """Newest ``/usr/lib/postgresql/<version>/bin`` holding initdb and pg_ctl (or the ones on PATH)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


class Mosquitto:
    """A mosquitto broker on ``127.0.0.1:<port>`` with persistence, so sessions survive a restart."""

    def __init__(self, root: Path) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise FileNotFoundError(f"mosquitto not found; {INSTALL_HINT}")
        self.binary = binary
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = root / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {root}/\n"
            f"log_dest file {root}/mosquitto.log\n"
            # Run as whoever starts it; as root it would otherwise switch to the 'mosquitto' user,
            # which cannot write to our private folder.
            f"user {getpass.getuser()}\n"
        )

    def start(self) -> None:
        with open(self.root / "stderr.log", "ab") as err:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=err, stderr=err)
        end = time.monotonic() + 10
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > end:
                logs = [self.root / "mosquitto.log", self.root / "stderr.log"]
                text = "".join(p.read_text() for p in logs if p.exists())
                raise RuntimeError(f"mosquitto did not start on port {self.port}: {text[-2000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Graceful stop (SIGTERM): the broker saves its sessions and queued messages to disk."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


class Postgres:
    """A throw-away PostgreSQL cluster on ``127.0.0.1:<port>``, trusting local connections.

    PostgreSQL refuses to run as root; as root the cluster belongs to the ``postgres`` user that the
    Debian package creates, and commands run through ``runuser``.
    """

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise FileNotFoundError(f"PostgreSQL server binaries (initdb, pg_ctl) not found; {INSTALL_HINT}")
        self.bindir = bindir
        self.port = free_port()
        # Not under pytest's tmp_path: that is private to root, and the server may run as 'postgres'.
        self.root = Path(tempfile.mkdtemp(prefix="yolostream-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")  # KeyError: the postgresql package was not installed properly
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [*self._as, str(self.bindir / tool), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def start(self) -> None:
        # fsync off: these tests stage outages, not power cuts, and it saves seconds.
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", opts, "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class Subscriber:
    """An MQTT subscriber that keeps what it receives and counts it by ``event_id`` (or topic when absent).

    Its session is persistent (fixed client id, clean_session off) and it reconnects on its own, so
    messages published while it is away, e.g. during a broker restart, are queued for it by the broker.
    """

    def __init__(self, port: int, topic: str, client_id: str) -> None:
        import json

        import paho.mqtt.client as mqtt

        self.counts: Counter[str] = Counter()
        self.messages: list[tuple[str, dict]] = []  # (topic, payload) in arrival order
        self._lock = threading.Lock()
        subscribed = threading.Event()

        def on_connect(client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
            client.subscribe(topic, qos=1)

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            payload = json.loads(msg.payload)
            # Acknowledge before counting, so that once a message is counted its PUBACK is queued
            # ahead of anything the test sends next (see `sync`).
            client.ack(msg.mid, msg.qos)
            with self._lock:
                self.counts[payload.get("event_id", msg.topic)] += 1
                self.messages.append((msg.topic, payload))

        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, manual_ack=True
        )
        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self._subacks: set[int] = set()
        self._suback = threading.Condition(self._lock)

        def on_subscribe(client: Any, userdata: Any, mid: int, *args: Any) -> None:
            with self._suback:
                self._subacks.add(mid)
                self._suback.notify_all()
            subscribed.set()

        self.client.on_subscribe = on_subscribe
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError(f"subscriber {client_id}: no SUBACK from 127.0.0.1:{port}")

    def sync(self, timeout: float = 10.0) -> None:
        """Round trip to the broker: when it returns, the broker has processed every PUBACK for the
        messages counted so far (it handles one connection's packets in order)."""
        _, mid = self.client.subscribe(f"sync/{uuid.uuid4().hex}", qos=1)
        with self._suback:
            if not self._suback.wait_for(lambda: mid in self._subacks, timeout):
                raise RuntimeError("subscriber: no SUBACK for the sync subscription")

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
