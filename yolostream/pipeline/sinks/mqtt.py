"""`MqttSink`: alarms and summaries published at QoS 1 to topics per stream and rule, through an outbox."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from yolostream.errors import ConfigError
from yolostream.pipeline.sinks.base import safe_name
from yolostream.pipeline.sinks.buffered import ALARM, BufferedSink
from yolostream.pipeline.sinks.transport import OutboxItem, Outcome


def topic_for(prefix: str, kind: str, record: dict[str, Any]) -> str:
    """``<prefix>/<stream>/alarms/<rule>`` for an alarm, ``<prefix>/<stream>/detections`` otherwise.

    Stream and rule names are reduced to ``[A-Za-z0-9._-]`` so that no name can inject a ``/``,
    ``+`` or ``#`` into the topic.
    """
    stream = safe_name(str(record["stream"]))
    if kind == ALARM:
        return f"{prefix}/{stream}/alarms/{safe_name(str(record['rule']))}"
    return f"{prefix}/{stream}/detections"


class MqttTransport:
    """Publishes a batch at QoS 1 and reports as delivered only what the broker acknowledged (PUBACK).

    Any failure throws the client away: a fresh client per connection means paho never re-sends, on
    its own, a message that the outbox will retry too (that would arrive twice).
    """

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        prefix: str = "yolostream",
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        keepalive_s: int = 30,
        connect_timeout_s: float = 5.0,
        ack_timeout_s: float = 10.0,
    ) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError as e:  # optional dependency
            raise ConfigError("the mqtt sink needs paho-mqtt: pip install 'yolostream[mqtt]'") from e
        self._mqtt = mqtt
        self.host, self.port, self.prefix = host, port, prefix.rstrip("/")
        self.client_id = client_id or f"yolostream-{os.getpid()}-{id(self):x}"
        self._auth = (username, password)
        self._tls = tls
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self._client: Any = None
        self._connected = threading.Event()
        self._refused: str | None = None

    def _connect(self) -> Any:
        if self._client is not None and self._client.is_connected():
            return self._client
        self.close()
        mqtt = self._mqtt
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            reconnect_on_failure=False,
        )
        if self._auth[0] is not None:
            client.username_pw_set(*self._auth)
        if self._tls:
            client.tls_set()
        client.connect_timeout = self.connect_timeout_s
        self._connected.clear()
        self._refused = None
        client.on_connect = self._on_connect
        self._client = client
        client.connect(self.host, self.port, keepalive=self.keepalive_s)
        client.loop_start()
        if not self._connected.wait(self.connect_timeout_s) or self._refused:
            reason = self._refused or "no CONNACK"
            raise ConnectionError(f"mqtt {self.host}:{self.port}: {reason}")
        return client

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
        self._connected.set()

    def deliver(self, items: Sequence[OutboxItem]) -> Outcome:
        out = Outcome()
        try:
            client = self._connect()
        except Exception as e:  # OSError, ConnectionError, paho errors: the broker is not there
            self.close()
            return Outcome(error=e)
        sent = []
        for item in items:
            try:
                topic = topic_for(self.prefix, item.kind, json.loads(item.payload))
            except (ValueError, KeyError) as e:
                out.rejected.append((item.id, f"bad record: {e}"))
                continue
            info = client.publish(topic, item.payload, qos=1)
            if info.rc != self._mqtt.MQTT_ERR_SUCCESS:
                out.error = ConnectionError(f"publish to {topic}: {self._mqtt.error_string(info.rc)}")
                break
            sent.append((item.id, info))
        # Collect the PUBACKs of what went out, even after an error: those need no retry.
        deadline = time.monotonic() + self.ack_timeout_s
        for item_id, info in sent:
            while not info.is_published() and client.is_connected() and time.monotonic() < deadline:
                info.wait_for_publish(0.05)
            if info.is_published():
                out.done.append(item_id)
        missing = len(sent) - len(out.done)
        if out.error is None and missing:
            out.error = ConnectionError(f"mqtt {self.host}:{self.port}: {missing} messages unacknowledged")
        if out.error is not None:
            self.close()
        return out

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()


class MqttSink(BufferedSink):
    """Publishes alarm records to ``<prefix>/<stream>/alarms/<rule>`` and summaries to
    ``<prefix>/<stream>/detections`` as JSON at QoS 1 (every alarm carries its ``event_id``).

    Delivery is at-least-once: a subscriber that must see each alarm once dedupes on ``event_id``.

    Args:
        host, port: broker address.
        state_dir: folder of the outbox file.
        **options: `BufferedSink` and `Outbox` keywords (``alarms``, ``summaries``, caps, backoff...).
    """

    def __init__(
        self,
        host: str,
        state_dir: str | os.PathLike[str],
        *,
        port: int = 1883,
        name: str = "mqtt",
        prefix: str = "yolostream",
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        keepalive_s: int = 30,
        connect_timeout_s: float = 5.0,
        ack_timeout_s: float = 10.0,
        **options: Any,
    ) -> None:
        if not prefix or any(c in prefix for c in "+#"):
            raise ConfigError(f"sink {name!r}: invalid MQTT topic prefix {prefix!r}")
        transport = MqttTransport(
            host,
            port,
            prefix=prefix,
            client_id=client_id,
            username=username,
            password=password,
            tls=tls,
            keepalive_s=keepalive_s,
            connect_timeout_s=connect_timeout_s,
            ack_timeout_s=ack_timeout_s,
        )
        super().__init__(name, transport, state_dir, **options)
