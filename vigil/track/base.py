"""The tracker contract every per-camera tracker honours.

Contract (see ``Tracker``):

* Call ``update`` once per *processed* frame, in time order, with that frame's detections —
  empty ``Detections`` too, so lost tracks age and die. Frames may be skipped (motion gating,
  detection fps sampling): ``time`` carries the real gap, so motion and track lifetimes are
  measured in seconds, not in calls.
* Boxes are in frame pixels of the analysed stream; rescale before the tracker, never inside.
* ``update`` returns only confirmed tracks matched in this frame, one row per matched detection,
  with the detection's confidence and class, the track's box (its filtered estimate) and
  ``tracker_id`` set. Rows keep the order of the input detections, so nothing downstream must
  re-match by IoU. ``detected`` gives the same tracks' detected boxes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from vigil.types import Detections


@runtime_checkable
class Tracker(Protocol):
    """One camera's multi-object tracker. State belongs to the instance and stays bounded."""

    def update(self, detections: Detections, time: float) -> Detections:
        """Associate this frame's detections (frame pixels) with tracks at ``time`` seconds.

        Returns the confirmed tracks visible in this frame (``tracker_id`` >= 1).
        """
        ...

    @property
    def ended_ids(self) -> list[int]:
        """Ids of confirmed tracks removed during the last ``update`` (forget their state)."""
        ...

    def detected(self) -> Detections:
        """The detector's own boxes of the confirmed tracks matched at the last update."""
        ...

    def predicted(self) -> Detections:
        """Boxes of all live tracks (confirmed, matched or lost) at the last update's time.

        For choosing detection regions around live tracks; ``confidence`` is each track's
        last detection score, ``tracker_id`` its id.
        """
        ...

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (new video or scene cut)."""
        ...
