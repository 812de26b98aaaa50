"""`AlarmEvent`: what a rule raises and every sink stores or forwards."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class AlarmObject:
    """One object involved in an alarm; ``xyxy`` in the frame's pixels."""

    track_id: int | None
    cls: int
    name: str
    conf: float
    xyxy: tuple[float, float, float, float]


@dataclass(frozen=True)
class AlarmEvent:
    """An alarm raised by a rule.

    ``event_id`` is a UUID made once when the rule fires; sinks use it as an idempotency key so that a
    retried delivery never stores or forwards the same alarm twice. ``time`` is the capture timestamp
    (``time.time()`` seconds) of the frame that fired it. ``snapshot_jpeg`` is the annotated frame, or None.
    """

    rule: str
    stream: str
    time: float
    kind: str  # "presence" | "count" | "dwell" | "line_cross"
    severity: str = "warning"  # "info" | "warning" | "critical"
    objects: tuple[AlarmObject, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    snapshot_jpeg: bytes | None = field(default=None, repr=False)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self, include_snapshot: bool = False) -> dict[str, Any]:
        """JSON-ready dict; the snapshot is left out unless asked (it is binary)."""
        d = asdict(self)
        d.pop("snapshot_jpeg")
        d["objects"] = [asdict(o) for o in self.objects]
        if include_snapshot and self.snapshot_jpeg is not None:
            import base64

            d["snapshot_jpeg_b64"] = base64.b64encode(self.snapshot_jpeg).decode()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlarmEvent:
        """Inverse of `to_dict` (a base64 snapshot, if present, is decoded)."""
        d = dict(d)
        snap = d.pop("snapshot_jpeg_b64", None)
        objects = tuple(AlarmObject(**{**o, "xyxy": tuple(o["xyxy"])}) for o in d.pop("objects", []))
        if snap is not None:
            import base64

            d["snapshot_jpeg"] = base64.b64decode(snap)
        return cls(objects=objects, **d)
