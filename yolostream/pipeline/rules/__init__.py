"""Alarm rules: zones and lines, typed rule configs, and the `RuleEngine` that turns frames into alarms."""

from yolostream.pipeline.rules.config import (
    RULE_KINDS,
    CountRule,
    DwellRule,
    LineCrossRule,
    PresenceRule,
    Rule,
    parse_rule,
    parse_rules,
)
from yolostream.pipeline.rules.engine import RuleEngine
from yolostream.pipeline.rules.zones import LineCounter, PolygonZone, anchor_points

__all__ = [
    "RULE_KINDS",
    "CountRule",
    "DwellRule",
    "LineCounter",
    "LineCrossRule",
    "PolygonZone",
    "PresenceRule",
    "Rule",
    "RuleEngine",
    "anchor_points",
    "parse_rule",
    "parse_rules",
]
