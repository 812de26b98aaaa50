"""Sinks: where alarms, detection summaries and recordings leave the pipeline.

Optional targets import their client library (paho-mqtt, psycopg, PyAV) only when constructed.
"""

from yolostream.pipeline.sinks.base import DetectionSummary, Sink
from yolostream.pipeline.sinks.buffered import BufferedSink
from yolostream.pipeline.sinks.jsonl import JsonlSink
from yolostream.pipeline.sinks.mqtt import MqttSink, MqttTransport
from yolostream.pipeline.sinks.outbox import Outbox
from yolostream.pipeline.sinks.postgres import PostgresSink, PostgresTransport
from yolostream.pipeline.sinks.snapshots import SnapshotSink, snapshot_path
from yolostream.pipeline.sinks.sqlite import SQLiteSink
from yolostream.pipeline.sinks.transport import OutboxItem, Outcome, PermanentError, Transport, deliver_each
from yolostream.pipeline.sinks.video import VideoRecorder
from yolostream.pipeline.sinks.webhook import WebhookSink, WebhookTransport

__all__ = [
    "BufferedSink",
    "DetectionSummary",
    "JsonlSink",
    "MqttSink",
    "MqttTransport",
    "Outbox",
    "OutboxItem",
    "Outcome",
    "PermanentError",
    "PostgresSink",
    "PostgresTransport",
    "SQLiteSink",
    "Sink",
    "SnapshotSink",
    "Transport",
    "VideoRecorder",
    "WebhookSink",
    "WebhookTransport",
    "deliver_each",
    "snapshot_path",
]
