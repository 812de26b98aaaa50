"""`Outbox`: a bounded on-disk queue that survives outages and crashes between a sink and its target.

A record is committed to a SQLite file (WAL) before `Outbox.put` returns; one delivery thread hands
records to a `Transport` in order and deletes them only once the target confirmed them. A failing
target is retried with capped exponential backoff while records wait on disk; whatever is left at
`Outbox.close` is delivered by the next process that opens the same file. Delivery is therefore
at-least-once; receivers dedupe on the record's key (the alarm's ``event_id``), which makes the
stored result exactly-once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from yolostream.errors import ConfigError
from yolostream.pipeline.sinks.transport import OutboxItem, Outcome, Transport

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    prio INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT UNIQUE,
    payload TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS items_order ON items(prio, id);
CREATE INDEX IF NOT EXISTS items_kind ON items(kind, id);
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    time REAL NOT NULL
);
"""


class Outbox:
    """Durable bounded queue plus its delivery thread.

    Args:
        path: SQLite file (created with its folder); one per sink, never shared by two live processes.
        transport: the target.
        droppable: kinds that may be dropped, oldest first, when the soft caps are reached (summaries).
            Other kinds (alarms) are delivered first and dropped only beyond the hard caps.
        max_items, max_bytes: soft caps on what waits on disk.
        hard_max_items, hard_max_bytes: caps for the kinds that are not droppable (default 4x soft).
        batch_size: records handed to one `Transport.deliver` call.
        retry_initial_s, retry_max_s: backoff after a failed delivery doubles from the first up to the second.
        max_dead: dead letters kept in the file for inspection (oldest removed first).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        transport: Transport,
        *,
        droppable: Iterable[str] = ("summary",),
        max_items: int = 100_000,
        max_bytes: int = 256 << 20,
        hard_max_items: int | None = None,
        hard_max_bytes: int | None = None,
        batch_size: int = 100,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        max_dead: int = 1000,
    ) -> None:
        hard_max_items = 4 * max_items if hard_max_items is None else hard_max_items
        hard_max_bytes = 4 * max_bytes if hard_max_bytes is None else hard_max_bytes
        checks = {
            "max_items": (max_items, max_items >= 1),
            "max_bytes": (max_bytes, max_bytes >= 1),
            "hard_max_items": (hard_max_items, hard_max_items >= max_items),
            "hard_max_bytes": (hard_max_bytes, hard_max_bytes >= max_bytes),
            "batch_size": (batch_size, batch_size >= 1),
            "retry_initial_s": (retry_initial_s, retry_initial_s > 0),
            "retry_max_s": (retry_max_s, retry_max_s >= retry_initial_s),
        }
        for key, (value, ok) in checks.items():
            if not ok:
                raise ConfigError(f"outbox {path}: invalid {key}={value!r}")
        self.path = Path(path)
        self.name = self.path.stem
        self._transport = transport
        self._droppable = frozenset(droppable)
        self._soft = (max_items, max_bytes)
        self._hard = (hard_max_items, hard_max_bytes)
        self._batch_size = batch_size
        self._retry = (retry_initial_s, retry_max_s)
        self._max_dead = max_dead

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_exclusive(self.path)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._sync = ""
        self._lock = threading.Lock()  # guards self._db and the counters below
        self._count: Counter[str] = Counter()
        self._bytes = 0
        self._recount()
        self._delivered = 0
        self._failed = 0
        self._rejected = 0
        self._dropped: Counter[str] = Counter()
        self._outage_since: float | None = None
        self._closed = False
        self._deadline = float("inf")
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"outbox-{self.name}", daemon=True)
        self._thread.start()

    # ---- producer side -------------------------------------------------------------------------

    def put(self, kind: str, payload: str, key: str | None = None) -> bool:
        """Queue one record, committed to disk before returning.

        Returns False when the record was dropped because the outbox is full (counted in `stats`).
        A key already waiting in the outbox is not queued twice.
        """
        size = len(payload.encode())
        prio = 1 if kind in self._droppable else 0
        with self._lock:
            if self._closed:
                raise RuntimeError(f"outbox {self.path} is closed")
            # Alarms pay for an fsync per commit; WAL with NORMAL still survives a process crash, and
            # losing the last summaries to a power cut is an acceptable price for their frame rate.
            with self._transaction("NORMAL" if prio else "FULL"):
                if not self._make_room(kind, size):
                    self._dropped[kind] += 1
                    return False
                cur = self._db.execute(
                    "INSERT INTO items(prio, kind, key, payload, size, created) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(key) DO NOTHING",
                    (prio, kind, key, payload, size, time.time()),
                )
                if cur.rowcount == 1:
                    self._count[kind] += 1
                    self._bytes += size
        self._wake.set()
        return True

    @contextlib.contextmanager
    def _transaction(self, synchronous: str) -> Iterator[None]:
        """One write transaction (caller holds the lock); on any error it rolls back and recounts."""
        if synchronous != self._sync:
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._sync = synchronous
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            self._recount()
            raise

    def _recount(self) -> None:
        self._count.clear()
        self._bytes = 0
        for kind, n, size in self._db.execute("SELECT kind, COUNT(*), SUM(size) FROM items GROUP BY kind"):
            self._count[kind] = n
            self._bytes += size

    def _make_room(self, kind: str, size: int) -> bool:
        """Drop old records until one more of ``size`` bytes fits; False if it is the new one to drop."""
        if not self._over(self._soft, size):
            return True
        self._drop_oldest(sorted(self._droppable), self._soft, size)
        if not self._over(self._soft, size):
            return True
        if kind in self._droppable:
            return False
        if self._over(self._hard, size):
            log.error("outbox %s: over its hard cap %s; dropping the oldest records", self.name, self._hard)
            self._drop_oldest(sorted(self._count), self._hard, size)
        return True

    def _n_items(self) -> int:
        return sum(self._count.values())

    def _over(self, caps: tuple[int, int], size: int) -> bool:
        return self._n_items() + 1 > caps[0] or self._bytes + size > caps[1]

    def _drop_oldest(self, kinds: list[str], caps: tuple[int, int], size: int) -> None:
        """Delete the fewest oldest records of ``kinds`` that bring one more record under ``caps``."""
        need_items = self._n_items() + 1 - caps[0]
        need_bytes = self._bytes + size - caps[1]
        marks = ",".join("?" * len(kinds))
        cur = self._db.execute(f"SELECT id, size FROM items WHERE kind IN ({marks}) ORDER BY id", kinds)
        ids = []
        for item_id, item_size in cur:
            if need_items <= 0 and need_bytes <= 0:
                break
            ids.append(item_id)
            need_items -= 1
            need_bytes -= item_size
        cur.close()
        for i in range(0, len(ids), 500):  # SQLite limits the number of bound parameters
            chunk = ids[i : i + 500]
            rows = self._db.execute(
                f"DELETE FROM items WHERE id IN ({','.join('?' * len(chunk))}) RETURNING kind, size", chunk
            )
            self._forget(rows.fetchall(), self._dropped)

    def _forget(self, rows: Iterable[tuple[str, int]], counter: Counter[str] | None = None) -> int:
        n = 0
        for kind, size in rows:
            self._count[kind] -= 1
            self._bytes -= size
            if counter is not None:
                counter[kind] += 1
            n += 1
        return n

    # ---- delivery side -------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = self._retry[0]
        while True:
            self._wake.clear()
            try:
                with self._lock:
                    if self._closed:
                        return
                    rows = self._db.execute(
                        "SELECT id, kind, key, payload FROM items ORDER BY prio, id LIMIT ?", (self._batch_size,)
                    ).fetchall()
                items = [OutboxItem(*row) for row in rows]
                if self._stopping.is_set() and (not items or time.monotonic() >= self._deadline):
                    return
                if not items:
                    self._wake.wait(1.0)
                    continue
                try:
                    outcome = self._transport.deliver(items)
                except Exception as e:  # a transport bug must not stop delivery: treat it as transient
                    outcome = Outcome(error=e)
                self._settle(items, outcome)
            except Exception as e:  # the file itself failed (disk full...): keep the thread, retry later
                log.exception("outbox %s: queue file error", self.name)
                outcome = Outcome(error=e)
            if outcome.error is None:
                backoff = self._retry[0]
                continue
            delay = min(backoff, max(0.0, self._deadline - time.monotonic()))
            backoff = min(2 * backoff, self._retry[1])
            # Wait out the backoff; a put does not cut it short, a close does (once, to drain).
            if self._stopping.is_set():
                time.sleep(delay)
            else:
                self._stopping.wait(delay)

    def _settle(self, items: Sequence[OutboxItem], outcome: Outcome) -> None:
        by_id = {item.id: item for item in items}
        with self._lock:
            if self._closed:
                return
            with self._transaction("FULL"):
                gone = [(i, None) for i in outcome.done] + list(outcome.rejected)
                for item_id, reason in gone:
                    row = self._db.execute("DELETE FROM items WHERE id = ? RETURNING kind, size", (item_id,))
                    n = self._forget(row.fetchall())
                    if reason is None:
                        self._delivered += n
                        continue
                    item = by_id[item_id]
                    self._rejected += 1
                    log.warning("outbox %s: %s %s rejected for good: %s", self.name, item.kind, item.key, reason)
                    self._db.execute(
                        "INSERT INTO dead(kind, key, payload, reason, time) VALUES (?, ?, ?, ?, ?)",
                        (item.kind, item.key, item.payload, reason, time.time()),
                    )
                if outcome.rejected:
                    self._db.execute("DELETE FROM dead WHERE id <= (SELECT MAX(id) FROM dead) - ?", (self._max_dead,))
            if outcome.error is not None:
                self._failed += 1
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    log.warning(
                        "outbox %s: delivery failing (%s: %s); buffering on disk and retrying",
                        self.name,
                        type(outcome.error).__name__,
                        outcome.error,
                    )
            elif self._outage_since is not None:
                down_s = time.monotonic() - self._outage_since
                log.warning("outbox %s: delivering again after %.1f s", self.name, down_s)
                self._outage_since = None

    # ---- control -------------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters: ``pending``, ``pending_bytes``, ``delivered``, ``failed_attempts``, ``rejected``,
        ``outage`` (0/1) and ``dropped_<kind>``."""
        with self._lock:
            out = {
                "pending": self._n_items(),
                "pending_bytes": self._bytes,
                "delivered": self._delivered,
                "failed_attempts": self._failed,
                "rejected": self._rejected,
                "outage": int(self._outage_since is not None),
            }
            out.update({f"dropped_{k}": v for k, v in sorted(self._dropped.items())})
        return out

    def pending(self) -> int:
        with self._lock:
            return self._n_items()

    def wait_empty(self, timeout: float) -> bool:
        """Block until nothing is pending or ``timeout`` seconds passed; True if empty."""
        end = time.monotonic() + timeout
        while self.pending() > 0:
            if time.monotonic() >= end:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Keep delivering for up to ``timeout`` seconds or until empty, then stop; idempotent."""
        if self._closed:
            return
        self._deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        # The extra seconds cover one `deliver` call that is still inside its own network timeout.
        self._thread.join(timeout + 15.0)
        if self._thread.is_alive():
            log.warning("outbox %s: delivery still busy at close; its batch will be retried", self.name)
        with self._lock:
            self._closed = True
            left = self._n_items()
            self._db.close()
        with contextlib.suppress(Exception):
            self._transport.close()
        self._lock_file.close()
        if left:
            log.warning("outbox %s: %d records left on disk for the next run", self.path, left)


def _lock_exclusive(path: Path) -> TextIO:
    """Hold an exclusive lock beside ``path``: two processes delivering one outbox would duplicate."""
    f = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115 - held until close
    try:
        import fcntl
    except ImportError:  # no flock on this platform: run without the guard
        return f
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        f.close()
        msg = f"outbox {path} is in use by another process (give each sink its own state_dir)"
        raise ConfigError(msg) from e
    return f
