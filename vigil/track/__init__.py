"""Multi-object tracking: the ``Tracker`` protocol and a ByteTrack-class implementation.

Public API: ``Tracker`` (protocol), ``ByteTracker``, ``KalmanBoxFilter``, the matching helpers
``iou_matrix`` / ``linear_assignment``, and MOTChallenge I/O (``read_mot_detections``,
``MotWriter``, ``run_track_mot``).
"""

from vigil.track.base import Tracker
from vigil.track.bytetrack import ByteTracker
from vigil.track.kalman import KalmanBoxFilter
from vigil.track.matching import iou_matrix, linear_assignment
from vigil.track.mot import (
    MOT_PUBLIC_DETECTIONS,
    MotWriter,
    read_mot_detections,
    run_track_mot,
    write_mot_tracks,
)

__all__ = [
    "MOT_PUBLIC_DETECTIONS",
    "ByteTracker",
    "KalmanBoxFilter",
    "MotWriter",
    "Tracker",
    "iou_matrix",
    "linear_assignment",
    "read_mot_detections",
    "run_track_mot",
    "write_mot_tracks",
]
