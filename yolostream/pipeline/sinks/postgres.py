"""`PostgresSink`: the SQLite sink's tables in a PostgreSQL database given by URL, through an outbox."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

from yolostream.errors import ConfigError
from yolostream.pipeline.sinks.base import redact
from yolostream.pipeline.sinks.buffered import ALARM, BufferedSink
from yolostream.pipeline.sinks.schema import (
    ALARM_COLUMNS,
    DETECTION_COLUMNS,
    POSTGRES_SCHEMA,
    alarm_row,
    detection_row,
    insert_sql,
)
from yolostream.pipeline.sinks.transport import OutboxItem, Outcome


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as e:  # optional dependency
        raise ConfigError("the postgres sink needs psycopg: pip install 'yolostream[postgres]'") from e
    return psycopg


class PostgresTransport:
    """Inserts a batch of records in one transaction; ``ON CONFLICT DO NOTHING`` makes replays harmless.

    A lost connection fails the whole batch (retried later, nothing half-stored). Any other database
    error is taken to be the data's fault: the batch is retried row by row and the rows that still
    fail are rejected, so one bad record cannot block the queue.
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0) -> None:
        self._psycopg = _psycopg()
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self._conn: Any = None
        self._alarm_sql = insert_sql("alarms", ALARM_COLUMNS, "%s")
        self._detection_sql = insert_sql("detections", DETECTION_COLUMNS, "%s")

    def _connect(self) -> Any:
        if self._conn is None or self._conn.closed:
            conn = self._psycopg.connect(self.url, connect_timeout=max(1, round(self.connect_timeout_s)))
            with conn.transaction():
                for statement in POSTGRES_SCHEMA:
                    conn.execute(statement)
            self._conn = conn
        return self._conn

    def _insert(self, conn: Any, items: Sequence[OutboxItem]) -> None:
        alarms, detections = [], []
        for item in items:
            record = json.loads(item.payload)
            if item.kind == ALARM:
                alarms.append(alarm_row(record))
            else:
                detections.append(detection_row(record))
        with conn.transaction(), conn.cursor() as cur:
            if alarms:
                cur.executemany(self._alarm_sql, alarms)
            if detections:
                cur.executemany(self._detection_sql, detections)

    def deliver(self, items: Sequence[OutboxItem]) -> Outcome:
        pg = self._psycopg
        try:
            conn = self._connect()
            try:
                self._insert(conn, items)
                return Outcome(done=[item.id for item in items])
            except (pg.OperationalError, pg.InterfaceError):
                raise
            except (pg.Error, ValueError, KeyError, TypeError):
                pass  # some row is bad: find it below
            out = Outcome()
            for item in items:
                try:
                    self._insert(conn, [item])
                    out.done.append(item.id)
                except (pg.OperationalError, pg.InterfaceError):
                    raise
                except (pg.Error, ValueError, KeyError, TypeError) as e:
                    out.rejected.append((item.id, f"{type(e).__name__}: {e}"))
            return out
        except (pg.OperationalError, pg.InterfaceError) as e:
            self.close()
            return Outcome(error=e)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class PostgresSink(BufferedSink):
    """Alarms and summaries into PostgreSQL tables ``alarms`` and ``detections`` (see `schema`).

    Args:
        url: libpq URL, e.g. ``postgresql://user:password@host:5432/db``.
        state_dir: folder of the outbox file.
        **options: `BufferedSink` and `Outbox` keywords (``alarms``, ``summaries``, caps, backoff...).
    """

    def __init__(
        self,
        url: str,
        state_dir: str | os.PathLike[str],
        *,
        name: str = "postgres",
        connect_timeout_s: float = 5.0,
        **options: Any,
    ) -> None:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(f"sink {name!r}: url must start with postgresql://, got {redact(url)!r}")
        transport = PostgresTransport(url, connect_timeout_s=connect_timeout_s)
        super().__init__(name, transport, state_dir, **options)
