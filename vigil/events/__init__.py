"""Events: the lifecycle of what users see (START/UPDATE/END) and where events are sent."""

from vigil.events.lifecycle import EventManager
from vigil.events.sinks import EventSink, JsonlEventSink, event_to_dict

__all__ = ["EventManager", "EventSink", "JsonlEventSink", "event_to_dict"]
