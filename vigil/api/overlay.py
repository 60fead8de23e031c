"""What the live overlay shows: the boxes a viewer may see, matching what redaction hides.

One rule for the overlay JSON (``GET /api/cameras/{name}/overlay``, drawn by the web UI) and
the boxes the server draws on MJPEG (``overlay=1``):

- **Never more than the picture shows.** A box mostly under a static privacy mask
  (``MASKED_SHARE`` of its area or more) is left out: the mask blacks that part of the view
  out in every output, unredacted included, and a box there would say who or what is behind
  it, and where it goes.
- **The boxes match what is blurred.** In people modes, where the camera's tracks hold its
  people (``ApiSettings.tracks_people``), live redaction hides the detector's raw person boxes
  of the analysed frame as well as the confirmed tracks (a person who just came in has no
  confirmed track yet). Those raw person boxes that no person track holds
  (IoU under ``SAME_PERSON_IOU`` with every one) are ``people``: drawn without a track id.
  In ``faces`` mode raw detections are not hidden and not shown; where the tracks cannot
  hold people (the motion detector) the person detector runs on the output frames
  themselves, and its boxes never reach the overlay.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.api.runtime import TrackBox, TrackSnapshot
from vigil.config.models import RedactConfig
from vigil.privacy.masks import mask_coverage
from vigil.privacy.redactor import mode_needs_people

#: A box with at least this share of its area under static masks is not shown.
MASKED_SHARE = 0.5
#: A person detection overlapping a person track this much (IoU) is that track's person.
SAME_PERSON_IOU = 0.5


@dataclass(frozen=True, slots=True)
class OverlayBoxes:
    """``tracks``: the confirmed tracks shown; ``people``: the person detections redaction
    hides that no shown track holds (id -1)."""

    tracks: tuple[TrackBox, ...] = ()
    people: tuple[TrackBox, ...] = ()


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _visible(boxes: tuple[TrackBox, ...], config: RedactConfig) -> tuple[TrackBox, ...]:
    shares = mask_coverage(config.masks, [b.box for b in boxes])
    return tuple(b for b, share in zip(boxes, shares, strict=True) if share < MASKED_SHARE)


def overlay_boxes(
    snapshot: TrackSnapshot, config: RedactConfig, tracks_people: bool
) -> OverlayBoxes:
    """The boxes of ``snapshot`` a viewer's overlay shows under ``config`` (the camera's
    redaction); ``tracks_people``: whether its tracks hold its people (see the module
    docstring)."""
    tracks = _visible(snapshot.tracks, config)
    if not (mode_needs_people(config.mode) and tracks_people):
        return OverlayBoxes(tracks)
    held = [t.box for t in snapshot.tracks if t.label == "person"]
    loose = tuple(
        d for d in snapshot.detections
        if d.label == "person" and all(_iou(d.box, t) < SAME_PERSON_IOU for t in held)
    )  # fmt: skip
    return OverlayBoxes(tracks, _visible(loose, config))
