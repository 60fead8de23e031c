"""Rules: zones and lines over tracked detections, producing `RuleEvent`\\ s and counts."""

from vigil.rules.engine import RuleEngine
from vigil.rules.line import LineRule
from vigil.rules.zone import ZoneRule

__all__ = ["LineRule", "RuleEngine", "ZoneRule"]
