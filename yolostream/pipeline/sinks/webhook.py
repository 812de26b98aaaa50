"""`WebhookSink`: each alarm (and optionally each summary) POSTed as JSON, retried through an outbox."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from yolostream.errors import ConfigError
from yolostream.pipeline.sinks.base import redact, to_json
from yolostream.pipeline.sinks.buffered import ALARM, BufferedSink
from yolostream.pipeline.sinks.transport import OutboxItem, Outcome, PermanentError, deliver_each

# A 4xx means the request itself is wrong and will be wrong again, except these two, which ask to retry.
RETRYABLE_4XX = frozenset({408, 429})


def is_permanent(status: int) -> bool:
    """True for a status that a retry cannot fix (4xx other than 408 Request Timeout, 429 Too Many)."""
    return 400 <= status < 500 and status not in RETRYABLE_4XX


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Turn redirects into errors: urllib would replay a POST as a GET without its body."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class WebhookTransport:
    """POSTs one record per request with ``Idempotency-Key`` set to its key (the alarm's ``event_id``).

    2xx is success; a permanent 4xx (see `is_permanent`) rejects the record (a dead letter, never
    retried); anything else (5xx, 408, 429, 3xx, a network error) is retried by the outbox.
    The body is the record with a ``"type"`` field: ``"alarm"`` or ``"detections"``.
    """

    def __init__(self, url: str, *, headers: Mapping[str, str] | None = None, timeout_s: float = 10.0) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirect())

    def _send(self, item: OutboxItem) -> None:
        body = {"type": "alarm" if item.kind == ALARM else "detections", **json.loads(item.payload)}
        headers = {"Content-Type": "application/json", **self.headers}
        if item.key is not None:
            headers["Idempotency-Key"] = item.key
        request = urllib.request.Request(self.url, data=to_json(body).encode(), headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as e:
            e.close()
            if is_permanent(e.code):
                raise PermanentError(f"HTTP {e.code} {e.reason} from {redact(self.url)}") from e
            raise ConnectionError(f"HTTP {e.code} {e.reason} from {redact(self.url)}") from e

    def deliver(self, items: Sequence[OutboxItem]) -> Outcome:
        return deliver_each(items, self._send)

    def close(self) -> None:
        pass


class WebhookSink(BufferedSink):
    """Alarms (and, with ``summaries=True``, per-frame summaries) POSTed to ``url``.

    Args:
        url: ``http://`` or ``https://`` endpoint.
        state_dir: folder of the outbox file.
        headers: extra request headers (e.g. ``Authorization``).
        **options: `BufferedSink` and `Outbox` keywords (``summaries``, caps, backoff...).
    """

    def __init__(
        self,
        url: str,
        state_dir: str | os.PathLike[str],
        *,
        name: str = "webhook",
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        summaries: bool = False,
        **options: Any,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"sink {name!r}: url must start with http:// or https://, got {redact(url)!r}")
        transport = WebhookTransport(url, headers=headers, timeout_s=timeout_s)
        super().__init__(name, transport, state_dir, summaries=summaries, **options)
