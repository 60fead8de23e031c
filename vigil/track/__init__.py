"""Multi-object tracking: the ``Tracker`` protocol and a ByteTrack-class implementation.

Public API: ``Tracker`` (protocol), ``ByteTracker``, ``KalmanBoxFilter``, the matching helper
``linear_assignment`` (IoU lives in ``vigil.boxes``), and MOTChallenge I/O
(``read_mot_detections``, ``MotWriter``, ``run_track_mot``).
"""

from vigil.track.base import Tracker
from vigil.track.bytetrack import ByteTracker
from vigil.track.kalman import KalmanBoxFilter
from vigil.track.matching import linear_assignment
from vigil.track.mot import (
    MotWriter,
    read_mot_detections,
    run_track_mot,
    write_mot_tracks,
)

__all__ = [
    "ByteTracker",
    "KalmanBoxFilter",
    "MotWriter",
    "Tracker",
    "linear_assignment",
    "read_mot_detections",
    "run_track_mot",
    "write_mot_tracks",
]
