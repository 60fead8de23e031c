"""Configuration as plain data: pydantic models with ``extra="forbid"`` and no I/O.

Coordinates of zones, lines and masks are **normalized** to 0..1 of the frame's width and
height, so one configuration survives a change of stream resolution. Every section has
defaults that work out of the box; ``docs/configuration.md`` is the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vigil.alerts.config import MqttConfig, WebhookConfig
from vigil.types import Anchor, Direction

NormPoint = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectConfig(_Model):
    """Object detection: which model, how often, which classes."""

    model: str = Field(
        "yolox-nano",
        description="Registry name (see `vigil models list`), a path to an ONNX file, "
        "or `motion` for the model-free moving-blob detector.",
    )
    fps: float = Field(5.0, gt=0, le=120, description="Frames per second to analyse.")
    confidence: float = Field(0.3, gt=0, lt=1, description="Minimum detection score.")
    nms_iou: float = Field(0.45, gt=0, lt=1, description="IoU above which NMS suppresses.")
    input_size: int | None = Field(
        None, ge=32, le=2048, description="Network input side; default is the model's own."
    )
    labels: list[str] = Field(
        default_factory=lambda: ["person", "bicycle", "car", "motorcycle", "bus", "truck",
                                 "dog", "cat"],
        description="Class names to keep (people, vehicles, animals by default).",
    )
    threads: int = Field(
        2, ge=1, le=64,
        description="ONNX Runtime intra-op threads. Two: `vigil serve` shares one model among "
        "all cameras, and with one thread that model tops out near 60 images/s on this "
        "class of CPU (bench/capacity.py).",
    )  # fmt: skip


class MotionConfig(_Model):
    """The motion gate in front of the detector."""

    enabled: bool = Field(True, description="Skip detection on frames without motion.")
    width: int = Field(320, ge=32, le=1920, description="Width the luma plane is reduced to.")
    threshold: int = Field(20, ge=1, le=255, description="Per-pixel luma difference that counts.")
    min_area: float = Field(
        0.0005, ge=0, le=1, description="Smallest motion blob, as a fraction of the frame."
    )
    alpha: float = Field(
        0.05, gt=0, le=1, description="Running-average rate of the background model."
    )
    moving_alpha: float = Field(
        0.01, ge=0, le=1,
        description="Background rate under moving pixels, per analysed frame: slow, so moving "
        "objects leave no ghost trail, yet an object that stops (and the ghost of one that "
        "left after standing still) is absorbed in half a minute at 5 fps (0 = never).",
    )
    recalibrate: float = Field(
        0.5, gt=0, le=1,
        description="Fraction of changed pixels that means a global change (lights, IR switch): "
        "the background is reset instead of reporting motion everywhere.",
    )
    masks: list[list[NormPoint]] = Field(
        default_factory=list, description="Polygons where motion is ignored."
    )
    full_frame_interval: float = Field(
        5.0, gt=0,
        description="Seconds between full-frame detections even without motion, so objects "
        "that were still from the start (a parked car) are found too.",
    )
    track_margin: float = Field(
        0.25, ge=0, le=2, description="Regions around live tracks, grown by this fraction."
    )
    stationary_seconds: float = Field(
        3.0, ge=0,
        description="A track whose box stays put this long is stationary: while all motion "
        "is inside stationary boxes the detector is skipped and they are carried (0 = off).",
    )
    stationary_recheck: float = Field(
        2.0, gt=0, description="Seconds between detector looks at stationary objects."
    )


class TrackerConfig(_Model):
    """The per-camera multi-object tracker."""

    high_threshold: float = Field(0.5, gt=0, lt=1, description="First-stage detection score.")
    low_threshold: float = Field(0.1, ge=0, lt=1, description="Lowest score used at all.")
    new_track_threshold: float = Field(0.6, gt=0, le=1, description="Score to start a track.")
    match_iou: float = Field(0.2, gt=0, lt=1, description="Minimum IoU of a first-stage match.")
    lost_seconds: float = Field(
        1.5, gt=0, le=60, description="How long a lost track can be re-found."
    )
    min_hits: int = Field(2, ge=1, le=30, description="Matches before a track is confirmed.")
    low_match_iou: float = Field(
        0.5, gt=0, lt=1,
        description="Minimum IoU of a second-stage match (low-score boxes keep tracks alive).",
    )
    direction_weight: float = Field(
        0.2, ge=0, le=2,
        description="Weight of the velocity-direction consistency bonus in the first stage.",
    )


class EventsConfig(_Model):
    """How tracked objects and rule hits become events."""

    min_duration: float = Field(
        1.0, ge=0, description="An object must be tracked this long (s) to make an event."
    )
    debounce: float = Field(
        2.0, ge=0, description="An event ends only after its object was gone this long (s)."
    )
    snapshots: bool = Field(True, description="Keep the best frame of each event.")


class ZoneConfig(_Model):
    """A polygon zone: enter/exit, dwell, loitering and occupancy."""

    polygon: list[NormPoint] = Field(min_length=3)
    labels: list[str] = Field(default_factory=list, description="Only these classes; [] = all.")
    anchor: Anchor = Anchor.BOTTOM_CENTER
    min_size: float = Field(
        0.0, ge=0, le=1, description="Ignore boxes smaller than this fraction of the frame."
    )
    dwell: float | None = Field(None, gt=0, description="Seconds inside that raise a dwell event.")
    loiter: float | None = Field(
        None, gt=0, description="Seconds inside that count as loitering (an alert)."
    )


class LineConfig(_Model):
    """A directed line segment from ``points[0]`` (A end) to ``points[1]`` (B end).

    Side A is on the left when looking from the first point to the second (in image
    coordinates, y down), side B on the right. Only crossings of the segment itself count.
    """

    points: tuple[NormPoint, NormPoint]
    labels: list[str] = Field(default_factory=list)
    anchor: Anchor = Anchor.BOTTOM_CENTER
    min_size: float = Field(0.0, ge=0, le=1)
    directions: list[Direction] = Field(
        default_factory=lambda: [Direction.A_TO_B, Direction.B_TO_A],
        description="Directions that raise events (both are always counted).",
    )
    hysteresis: float = Field(
        0.01, ge=0, le=0.25,
        description="Half-width of the band around the line, as a fraction of the frame "
        "diagonal: a track must leave the band on the other side to count, so jitter on the "
        "line counts once.",
    )

    @field_validator("points")
    @classmethod
    def _distinct(cls, v: tuple[NormPoint, NormPoint]) -> tuple[NormPoint, NormPoint]:
        if v[0] == v[1]:
            raise ValueError("a line needs two different points")
        return v


class RedactConfig(_Model):
    """What is hidden in every image Vigil shows or exports."""

    mode: Literal["faces", "people", "faces+people", "none"] = "faces"
    style: Literal["blur", "pixelate", "fill"] = "blur"
    margin: float = Field(0.2, ge=0, le=2, description="Box growth on each side, as a fraction.")
    hold_frames: int = Field(
        15, ge=0, le=1000, description="Frames a region stays hidden after last seen."
    )
    masks: list[list[NormPoint]] = Field(
        default_factory=list, description="Polygons always blacked out."
    )
    face_threshold: float = Field(
        0.3, gt=0, lt=1,
        description="CenterFace heatmap score that counts as a face; lower hides more "
        "(a false positive only blurs a patch, a miss shows a face).",
    )
    face_scales: list[float] = Field(
        default_factory=lambda: [1.0], min_length=1,
        description="Face detection passes, as scales of the frame (capped by face_max_side); "
        "add 2.0 to find faces under ~10 px in low-resolution streams, at 4x the cost.",
    )
    face_max_side: int = Field(
        1280, ge=64, le=8192,
        description="Long side (px) of the scale-1 face pass; larger frames are reduced to it.",
    )
    person_confidence: float = Field(
        0.25, gt=0, lt=1, description="Detector score for a person box in people modes."
    )

    @field_validator("face_scales")
    @classmethod
    def _positive_scales(cls, v: list[float]) -> list[float]:
        if any(s <= 0 or s > 4 for s in v):
            raise ValueError("face scales must be in (0, 4]")
        return v


RecordMode = Literal["continuous", "motion", "events", "off"]


class RecordConfig(_Model):
    """What a camera records (stream copy of its ``record`` input) and how long it is kept."""

    mode: RecordMode = Field(
        "continuous",
        description="continuous: always; motion: while the motion gate sees motion; events: "
        "while an event is open; off: nothing. Pre/post-roll apply to motion and events.",
    )
    segment_seconds: float = Field(10.0, gt=0, le=3600, description="Length of a segment file.")
    pre_roll: float = Field(5.0, ge=0, le=300, description="Seconds kept before activity.")
    post_roll: float = Field(5.0, ge=0, le=3600, description="Seconds recorded after activity.")
    max_age: float | None = Field(
        None, gt=0, description="Retention: delete unlocked segments older than this (s)."
    )
    max_bytes: int | None = Field(
        None, gt=0, description="Retention: this camera's size quota in bytes (oldest go first)."
    )


class DetectorConfig(_Model):
    """The one shared detector: how requests from all cameras are batched."""

    max_batch: int = Field(
        8, ge=1, le=256, description="Most images in one inference call (1 = no batching)."
    )
    max_wait_ms: float = Field(
        10.0, ge=0, le=1000,
        description="How long the first request of a batch waits for others to join.",
    )


class ServerConfig(_Model):
    """`vigil serve`: where the API listens and the disk limits of all cameras together."""

    host: str = Field("127.0.0.1", min_length=1, description="Address the API listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port the API listens on.")
    secure_cookies: bool = Field(
        True, description="Send session cookies only over HTTPS (turn off only for local tests)."
    )
    total_max_bytes: int | None = Field(
        None, gt=0, description="Retention: size quota of all recordings together, in bytes."
    )
    min_free_bytes: int | None = Field(
        None, gt=0,
        description="Retention keeps at least this much free on the recordings disk: below "
        "it the oldest unlocked segments go early (and a warning says when that is not enough).",
    )  # fmt: skip
    free_space_reserve: float = Field(
        3600.0, ge=0, le=30 * 86400,
        description="Retention also keeps free the space of this many seconds of recording at "
        "the recent rate, deleting the oldest unlocked segments early (0: min_free_bytes only).",
    )  # fmt: skip
    retention_interval: float = Field(
        60.0, gt=0, le=86400, description="Seconds between retention runs."
    )
    worker_processes: int | Literal["auto"] = Field(
        "auto",
        description=(
            "Camera analysis outside the main process: 0 runs every camera in a thread of "
            "one process; n > 0 spreads the cameras over n worker processes (frames cross "
            "in shared memory, the detector stays shared and batches across all of them); "
            "'auto' uses one per CPU core when there are more than 4 cameras per core, "
            "else threads (bench/capacity.py: on 2 cores, processes sustain more cameras "
            "for about 20-30 MB more per camera)."
        ),
    )  # fmt: skip

    @field_validator("worker_processes")
    @classmethod
    def _process_count(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 0 <= value <= 64:
            raise ValueError(f"worker_processes must be 0..64 or 'auto', got {value}")
        return value


SourceRole = Literal["detect", "record"]


def _both_roles() -> list[SourceRole]:
    return ["detect", "record"]


class SourceConfig(_Model):
    """One input of a camera: a main stream to record, a sub-stream to analyse, or both."""

    url: str = Field(description="File path, rtsp://, rtsps://, http(s)://, or synthetic://.")
    roles: list[SourceRole] = Field(
        default_factory=_both_roles, description="What this input is used for."
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="FFmpeg demuxer options for this input, e.g. `{rtsp_transport: tcp}`.",
    )


class CameraSettings(_Model):
    """Settings a camera may override; unset fields come from the global defaults."""

    detect: DetectConfig | None = None
    motion: MotionConfig | None = None
    tracker: TrackerConfig | None = None
    events: EventsConfig | None = None
    redact: RedactConfig | None = None
    record: RecordConfig | None = None


class CameraConfig(CameraSettings):
    sources: list[SourceConfig] = Field(min_length=1)
    zones: dict[str, ZoneConfig] = Field(default_factory=dict)
    lines: dict[str, LineConfig] = Field(default_factory=dict)
    enabled: bool = True


class ResolvedCamera(_Model):
    """A camera with global defaults merged in: every section present."""

    name: str
    sources: list[SourceConfig]
    detect: DetectConfig
    motion: MotionConfig
    tracker: TrackerConfig
    events: EventsConfig
    redact: RedactConfig
    zones: dict[str, ZoneConfig]
    lines: dict[str, LineConfig]
    enabled: bool = True
    record: RecordConfig = Field(default_factory=RecordConfig)


class VigilConfig(_Model):
    """The whole file. Top-level sections are defaults for every camera."""

    detect: DetectConfig = Field(default_factory=DetectConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    redact: RedactConfig = Field(default_factory=RedactConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    mqtt: MqttConfig | None = Field(None, description="Publish events to an MQTT broker.")
    webhooks: WebhookConfig | None = Field(None, description="POST signed events to URLs.")
    zones: dict[str, ZoneConfig] = Field(
        default_factory=dict, description="Zones for `vigil analyze` (and cameras without any)."
    )
    lines: dict[str, LineConfig] = Field(default_factory=dict)
    cameras: dict[str, CameraConfig] = Field(default_factory=dict)
    data_dir: Path = Field(Path("vigil-data"), description="Where recordings and the DB live.")
    database_url: str | None = Field(
        None,
        description="sqlite:///path or postgresql://user:pass@host/db; default is SQLite "
        "(WAL) at <data_dir>/vigil.db.",
    )

    @model_validator(mode="after")
    def _names(self) -> VigilConfig:
        for name in self.cameras:
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(
                    f"camera name {name!r} may hold only letters, digits, '-' and '_'"
                )
        return self

    def camera(self, name: str) -> ResolvedCamera:
        """The named camera with global defaults merged in."""
        cam = self.cameras[name]
        return ResolvedCamera(
            name=name,
            sources=cam.sources,
            detect=cam.detect or self.detect,
            motion=cam.motion or self.motion,
            tracker=cam.tracker or self.tracker,
            events=cam.events or self.events,
            redact=cam.redact or self.redact,
            zones=cam.zones or self.zones,
            lines=cam.lines or self.lines,
            enabled=cam.enabled,
            record=cam.record or self.record,
        )

    def for_source(self, url: str, name: str = "camera") -> ResolvedCamera:
        """An ad-hoc camera for `vigil analyze`: the global sections plus top-level rules."""
        return ResolvedCamera(
            name=name,
            sources=[SourceConfig(url=url)],
            detect=self.detect,
            motion=self.motion,
            tracker=self.tracker,
            events=self.events,
            redact=self.redact,
            zones=self.zones,
            lines=self.lines,
            record=self.record,
        )
