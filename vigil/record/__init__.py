"""Recording: stream-copy segments, retention, integrity hashes and signed exports.

- ``Segmenter`` / ``Recorder``: packets to ``recordings/<camera>/<date>/<HH>/<MM.SS>.mp4``;
  the recorder's ``PacketTap`` (``vigil.record.tap``) hands them to live stream copies too.
- ``plan_retention`` (pure) and ``RetentionJob``: age and size quotas, evidence locks.
- ``export_range`` / ``verify_export``: an MP4 of a time range with an Ed25519-signed manifest.
"""

from vigil.record.export import ExportResult, VerifyReport, export_range, verify_export
from vigil.record.layout import check_camera_id, parse_segment_path, segment_path
from vigil.record.recorder import Recorder
from vigil.record.retention import (
    CameraRetention,
    RetentionJob,
    RetentionPlan,
    RetentionPolicy,
    SegmentMeta,
    plan_retention,
)
from vigil.record.segmenter import Segmenter, SegmentInfo, SegmentSink
from vigil.record.signing import load_or_create_key

__all__ = [
    "CameraRetention",
    "ExportResult",
    "Recorder",
    "RetentionJob",
    "RetentionPlan",
    "RetentionPolicy",
    "SegmentInfo",
    "SegmentMeta",
    "SegmentSink",
    "Segmenter",
    "VerifyReport",
    "check_camera_id",
    "export_range",
    "load_or_create_key",
    "parse_segment_path",
    "plan_retention",
    "segment_path",
    "verify_export",
]
