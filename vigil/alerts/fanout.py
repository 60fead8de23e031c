"""`FanoutSink`: one `EventSink` in front of several, each failure isolated."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from vigil.events.sinks import EventSink
from vigil.types import Event

log = logging.getLogger(__name__)


@runtime_checkable
class Settling(Protocol):
    """A sink that holds what it was handed before it is delivered (MQTT while the broker is
    down): ``handed`` counts the messages handed so far, ``settled`` says how many of the
    first ones are settled (delivered, or given up for good: a full queue's oldest)."""

    def handed(self) -> int: ...

    def settled(self) -> int: ...


#: What the settling sinks had been handed at one moment (``FanoutSink.mark``).
Mark = tuple[tuple[Settling, int], ...]


class FanoutSink:
    """Publishes every event to each sink in order; a sink that raises never stops the others.

    A failure is logged (with the traceback) and counted in ``failures[i]`` for the sink at
    index ``i``; the event still reaches the sinks after it. The pipeline calling ``publish``
    therefore never sees an alert sink's error: alerts are best effort next to the store,
    which should be called directly by the pipeline when a failure must stop it.
    """

    def __init__(self, sinks: Sequence[EventSink]) -> None:
        self.sinks = list(sinks)
        self.failures = [0] * len(self.sinks)

    def add(self, sinks: Sequence[EventSink]) -> None:
        """Publish to ``sinks`` too, from the next event on (from any thread)."""
        # The counters first: a publish running meanwhile may already see the new sinks.
        self.failures = [*self.failures, *([0] * len(sinks))]
        self.sinks = [*self.sinks, *sinks]

    def remove(self, sinks: Sequence[EventSink]) -> None:
        """Publish no more to ``sinks`` (from any thread; closing them is the caller's)."""
        kept = [(sink, n) for sink, n in zip(self.sinks, self.failures, strict=True)
                if all(sink is not gone for gone in sinks)]  # fmt: skip
        self.sinks = [sink for sink, _n in kept]
        self.failures = [n for _sink, n in kept]

    def mark(self) -> Mark:
        """Where each settling sink stands now: ``is_settled(mark)`` says later whether all
        it had been handed until now is settled (a cluster head acknowledges a camera's
        outbox only that far: ``vigil.cluster.backend``)."""
        return tuple((sink, sink.handed()) for sink in self.sinks if isinstance(sink, Settling))

    @staticmethod
    def is_settled(mark: Mark) -> bool:
        return all(sink.settled() >= handed for sink, handed in mark)

    def publish(self, event: Event) -> None:
        # The lists as they are now: ``add``/``remove`` replace them meanwhile.
        sinks, failures = self.sinks, self.failures
        for index, sink in enumerate(sinks):
            try:
                sink.publish(event)
            except Exception:
                if index < len(failures):
                    failures[index] += 1
                log.exception(
                    "event sink %d (%s) failed on event %s; the other sinks still get it",
                    index,
                    type(sink).__name__,
                    event.id,
                )

    def close(self) -> None:
        """Close every sink, even when one of them fails to close."""
        for index, sink in enumerate(self.sinks):
            try:
                sink.close()
            except Exception:
                self.failures[index] += 1
                log.exception("event sink %d (%s) failed to close", index, type(sink).__name__)

    def __enter__(self) -> FanoutSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
