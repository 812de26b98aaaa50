"""What the outbox hands records to: `Transport`, its `Outcome`, and the records themselves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutboxItem:
    """One queued record: ``payload`` is JSON text, ``key`` its idempotency key (or None)."""

    id: int
    kind: str
    key: str | None
    payload: str


class PermanentError(Exception):
    """The target refused a record for good (e.g. HTTP 400, a row it cannot store): never retried."""


@dataclass
class Outcome:
    """What a `Transport.deliver` call achieved.

    ``done``: ids the target confirmed. ``rejected``: ``(id, reason)`` refused for good (dead letters).
    ``error``: a transient failure; every id in neither list is retried later.
    """

    done: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    error: BaseException | None = None


class Transport(Protocol):
    """Sends records to one target. ``deliver`` must bound its own blocking time (socket timeouts)."""

    def deliver(self, items: Sequence[OutboxItem]) -> Outcome: ...

    def close(self) -> None: ...


def deliver_each(items: Sequence[OutboxItem], send: Callable[[OutboxItem], None]) -> Outcome:
    """`Outcome` of sending items one at a time: stop at the first transient error, skip rejected ones."""
    out = Outcome()
    for item in items:
        try:
            send(item)
        except PermanentError as e:
            out.rejected.append((item.id, str(e)))
        except Exception as e:  # any other failure is assumed transient: the target may come back
            out.error = e
            break
        else:
            out.done.append(item.id)
    return out
