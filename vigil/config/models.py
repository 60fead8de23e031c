"""Configuration as plain data: pydantic models with ``extra="forbid"`` and no I/O.

Coordinates of zones, lines and masks are **normalized** to 0..1 of the frame's width and
height, so one configuration survives a change of stream resolution. Every section has
defaults that work out of the box; ``docs/configuration.md`` is the reference.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vigil.config.alerts import MqttConfig, WebhookConfig
from vigil.config.merge import merge_camera_defaults
from vigil.types import Anchor, Direction

#: The longest camera name: the width of the store's ``camera`` columns (an event id,
#: ``<camera>-<start>-<track>``, then fits the 128 of ``events.id``).
CAMERA_NAME_MAX = 64
#: The longest zone or line name: the store keeps rule names in 64-wide columns
#: (``counts.rule``), as camera names.
RULE_NAME_MAX = 64

NormPoint = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectConfig(_Model):
    """Object detection: which model, how often, which classes.

    A camera may set its own model and model settings: `vigil serve` loads one model per
    distinct model settings (every key here but `fps`, `confidence` and `labels`, which each
    camera applies to the results of the model it shares), and the cameras sharing one batch
    their frames together. A `model` that is a path must exist (checked at load). On a Ray
    cluster (`server.backend: ray`) each node runs one detector actor per distinct model
    settings among the cameras it runs.
    """

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
        default_factory=lambda: [
            "person",
            "bicycle",
            "car",
            "motorcycle",
            "bus",
            "truck",
            "dog",
            "cat",
        ],
        description="Class names to keep (people, vehicles, animals by default).",
    )
    threads: int | None = Field(
        None, ge=1, le=64,
        description="ONNX Runtime intra-op threads; unset, `vigil serve` uses 2 (it shares "
        "one model among the cameras using it, and with one thread that model tops out near 60 "
        "images/s on this class of CPU, bench/capacity.py) and `vigil analyze` one per core "
        "less the core its decode thread needs (at least 1; 2 with `--no-decode-thread`; "
        "bench/pipeline.py).",
    )  # fmt: skip
    device: Literal["auto", "cpu", "cuda", "tensorrt"] = Field(
        "auto",
        description="Where the model runs: `auto` takes TensorRT, else CUDA, else the CPU, "
        "whichever this ONNX Runtime offers; `cuda` or `tensorrt` refuse to start without "
        "that provider instead of running on the CPU (the `gpu` extra, docs/gpu.md). "
        "Cameras with the same model settings share one loaded model.",
    )
    fp16: bool = Field(
        False,
        description="Half precision on a GPU: FP16 TensorRT engines, or the model converted "
        "to FP16 for CUDA (needs onnxconverter-common, in the `gpu` extra). No effect on the "
        "CPU.",
    )
    device_id: int = Field(0, ge=0, le=63, description="Which GPU (CUDA device index).")
    engine_cache: Path | None = Field(
        None,
        description="Folder for TensorRT engines (built once per model, shape profile and "
        "GPU; seconds to minutes); default `engines/` in the model cache.",
    )

    @property
    def is_motion(self) -> bool:
        """Whether ``model`` names the model-free motion detector (no ONNX model to load)."""
        return self.model.strip().lower() == "motion"

    @property
    def model_settings(self) -> tuple[tuple[str, object], ...]:
        """What makes one loaded model: every field but the per-camera filters (``fps``,
        ``confidence``, ``labels``, applied to the shared model's results). Cameras whose
        settings are equal share one model and batch together; a registry name counts the
        same however it is spelled (``yolox-nano``, ``yolox_nano``)."""
        values = self.model_dump(exclude={"fps", "confidence", "labels"})
        name = self.model.strip()
        if not model_is_path(name):
            name = name.lower().replace("_", "-")
        values["model"] = name
        return tuple(sorted(values.items()))


def model_is_path(model: str) -> bool:
    """Whether ``detect.model`` names a file (as ``vigil.detect.models`` reads it), not a
    registry name or ``motion``."""
    return model.strip().lower().endswith(".onnx") or "/" in model or os.sep in model


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
        0.01,
        ge=0,
        le=1,
        description="Background rate under moving pixels, per analysed frame: slow, so moving "
        "objects leave no ghost trail, yet an object that stops (and the ghost of one that "
        "left after standing still) is absorbed in half a minute at 5 fps (0 = never).",
    )
    recalibrate: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Fraction of changed pixels that means a global change (lights, IR switch): "
        "the background is reset instead of reporting motion everywhere.",
    )
    masks: list[list[NormPoint]] = Field(
        default_factory=list, description="Polygons where motion is ignored."
    )
    full_frame_interval: float = Field(
        5.0,
        gt=0,
        description="Seconds between full-frame detections even without motion, so objects "
        "that were still from the start (a parked car) are found too.",
    )
    track_margin: float = Field(
        0.25, ge=0, le=2, description="Regions around live tracks, grown by this fraction."
    )
    stationary_seconds: float = Field(
        3.0,
        ge=0,
        description="A track whose box stays put this long is stationary: while all motion "
        "is inside stationary boxes the detector is skipped and they are carried (0 = off).",
    )
    stationary_recheck: float = Field(
        2.0, gt=0, description="Seconds between detector looks at stationary objects."
    )
    carry_frames: int = Field(
        2,
        ge=0,
        le=10,
        description="Analysed frames in a row on which moving tracks keep their last boxes "
        "without the detector, while all motion lies inside those boxes (or in motion the "
        "detector found empty) and the tracker holds no lost or new track; then the detector "
        "runs, so a new object is found at most this many frames late (0 = off).",
    )


class TrackerConfig(_Model):
    """The per-camera multi-object tracker."""

    high_threshold: float = Field(0.5, gt=0, lt=1, description="First-stage detection score.")
    low_threshold: float = Field(0.1, ge=0, lt=1, description="Lowest score used at all.")
    new_track_threshold: float = Field(
        0.4,
        gt=0,
        le=1,
        description="Score to start a track (may lie below `high_threshold`: an unmatched "
        "low-score box starts a tentative track).",
    )
    match_iou: float = Field(0.3, gt=0, lt=1, description="Minimum IoU of a first-stage match.")
    lost_seconds: float = Field(
        1.5,
        gt=0,
        le=60,
        description="How long a lost track can be re-found (keep it below `events.debounce`: "
        "an event that closes first loses its object's EXIT measures).",
    )
    min_hits: int = Field(2, ge=1, le=30, description="Matches before a track is confirmed.")
    low_match_iou: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Minimum IoU of a second-stage match (low-score boxes keep tracks alive).",
    )
    direction_weight: float = Field(
        0.0,
        ge=0,
        le=2,
        description="Weight of the velocity-direction consistency bonus in the first stage.",
    )
    confirm_score: float = Field(
        1.0,
        gt=0,
        le=1,
        description="A new track whose first detection scores at least this is confirmed at "
        "once (weaker ones wait for `min_hits`). 1, the default, turns it off: a real "
        "detector's recurring false boxes score high too (docs/tracking.md).",
    )
    coast_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Time constant (s) of the velocity decay of a track while it is unseen.",
    )
    refind_distance: float = Field(
        0.3,
        ge=0,
        le=2,
        description="Re-find stage: a track left unmatched by IoU takes a left-over detection "
        "whose centre lies within this fraction of its box height (0 turns the stage off).",
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


class ZoneCalibration(_Model):
    """Real-world lengths of a four-cornered zone's sides, for speeds on the ground plane.

    The zone's four polygon corners are taken as lying on the (flat) ground and form a
    quadrilateral with a right angle at the first corner, e.g. a rectangle marked on the road
    (a lane between two stop lines); `distances` are the true lengths of its sides. From them
    an image→ground homography gives positions, speeds and headings in metres or feet.
    """

    distances: list[float] = Field(
        min_length=4, max_length=4,
        description="Lengths of the sides corner 1→2, 2→3, 3→4 and 4→1, in metres (feet with "
        "`units: imperial`); for a rectangle, opposite sides are equal.",
    )  # fmt: skip
    units: Literal["metric", "imperial"] = Field(
        "metric", description="metric: metres and km/h; imperial: feet and mph."
    )

    @field_validator("distances")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(d <= 0 for d in v):
            raise ValueError(f"side lengths must be positive, got {v}")
        return v


class ZoneDirection(_Model):
    """A one-way zone: tracks moving against `heading` for a while raise a wrong-way event.

    Headings are compass-like as seen on the screen: 0 = up, 90 = right, 180 = down,
    270 = left. In a calibrated zone they are true angles on the ground, with 0 the ground
    direction that points up the screen at the zone's centre.
    """

    heading: float = Field(
        ge=0, lt=360, description="Allowed direction of travel, degrees (see above)."
    )
    tolerance: float = Field(
        60.0,
        gt=0,
        lt=180,
        description="Headings within this many degrees of `heading` are allowed.",
    )
    min_distance: float | None = Field(
        None,
        gt=0,
        description="Distance a track must move outside the allowed headings to raise the "
        "event: metres/feet in a calibrated zone (default 3 m or 10 ft), otherwise a fraction "
        "of the frame diagonal (default 0.05).",
    )
    min_time: float = Field(
        1.0, ge=0, description="Seconds a track must keep moving the wrong way."
    )


class ZoneConfig(_Model):
    """A polygon zone: enter/exit, dwell, loitering, occupancy; speed, direction, stopping."""

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
    calibration: ZoneCalibration | None = Field(
        None, description="Side lengths of a four-point zone: turns on speeds (see below)."
    )
    speed_limit: float | None = Field(
        None,
        gt=0,
        description="Smoothed speed (km/h, or mph with imperial units) above which a track "
        "raises a speeding event; needs `calibration`.",
    )
    smoothing: float = Field(
        1.0,
        ge=0.5,
        le=10,
        description="Seconds of track positions that one speed or heading is fitted over: "
        "longer is steadier against box jitter, shorter follows changes sooner.",
    )
    direction: ZoneDirection | None = Field(
        None, description="Allowed direction of travel (wrong-way events, see below)."
    )
    stopped: float | None = Field(
        None,
        gt=0,
        description="Seconds a track may stand still inside before a stopped-vehicle event.",
    )
    stopped_radius: float | None = Field(
        None,
        gt=0,
        description="A track whose smoothed position stays within this distance is standing "
        "still: metres/feet in a calibrated zone (default 1 m or 3 ft), otherwise a fraction "
        "of the frame diagonal (default 0.02).",
    )

    @model_validator(mode="after")
    def _calibrated(self) -> ZoneConfig:
        if self.calibration is not None and len(self.polygon) != 4:
            raise ValueError(
                f"a calibrated zone needs exactly 4 polygon corners (one per side length), "
                f"got {len(self.polygon)}"
            )
        if self.speed_limit is not None and self.calibration is None:
            raise ValueError(
                "speed_limit needs calibration: give the real lengths of the zone's four "
                "sides as calibration.distances"
            )
        return self


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
        0.01,
        ge=0,
        le=0.25,
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
        0.3,
        gt=0,
        lt=1,
        description="CenterFace heatmap score that counts as a face; lower hides more "
        "(a false positive only blurs a patch, a miss shows a face).",
    )
    face_scales: list[float] = Field(
        default_factory=lambda: [1.0],
        min_length=1,
        description="Face detection passes, as scales of the frame (capped by face_max_side); "
        "add 2.0 to find faces under ~10 px in low-resolution streams, at 4x the cost.",
    )
    face_max_side: int = Field(
        1280,
        ge=64,
        le=8192,
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
    preview_interval: float = Field(
        2.0, ge=0, le=60,
        description="Seconds between the redacted preview thumbnails of the recordings "
        "timeline, kept with their segment (0: none).",
    )  # fmt: skip


class DetectorConfig(_Model):
    """The one shared detector: how requests from all cameras are batched."""

    max_batch: int = Field(
        8, ge=1, le=256, description="Most images in one inference call (1 = no batching)."
    )
    max_wait_ms: float = Field(
        10.0,
        ge=0,
        le=1000,
        description="How long the first request of a batch waits for others to join.",
    )


class JobsConfig(_Model):
    """`vigil serve`'s background jobs: each ended event's redacted clip (rendered before
    anyone opens it) and exports, in a bounded queue kept in the database."""

    workers: int = Field(
        1, ge=0, le=16,
        description="Threads rendering clips and exports (each encodes video: one per two "
        "cores is plenty). 0: none in this server; jobs wait in the database for one that "
        "has some.",
    )  # fmt: skip
    max_queued: int = Field(
        200, ge=1, le=100_000,
        description="Most jobs queued or running in all: beyond it an export or a clip "
        "request gets 503, and the clip of an ended event is skipped (cut when asked for).",
    )  # fmt: skip
    max_user_exports: int = Field(
        2, ge=1, le=1000, description="Exports one user may have queued or running (429 beyond)."
    )
    max_user_clips: int = Field(
        6, ge=1, le=1000,
        description="Event clips one user may wait for at once (429 beyond).",
    )  # fmt: skip
    max_export_seconds: float = Field(
        3600.0, gt=0, le=7 * 86400, description="Longest span of recording one export may cover."
    )
    clip_cache_bytes: int = Field(
        2 * 1024**3, ge=1024**2,
        description="Most disk the rendered event clips keep (in <data_dir>/clips); the least "
        "recently served go first.",
    )  # fmt: skip
    clip_wait: float = Field(
        2.0, ge=0, le=60,
        description="Seconds a request for a clip that is not ready waits before it answers "
        "202 with the job's progress.",
    )  # fmt: skip
    clip_settle: float = Field(
        90.0, ge=0, le=3600,
        description="Seconds after an event's clip span that its background render waits for "
        "the post-roll to be recorded (it starts as soon as the recording covers the span).",
    )  # fmt: skip
    face_full_every: float = Field(
        1.0, ge=0, le=60,
        description="In clips and exports, seconds between searches for faces in the whole "
        "frame; in between only where people move (0: every frame whole, slower).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _per_user_within_total(self) -> JobsConfig:
        # Only a bound set by hand: a lowered max_queued just caps the defaults.
        for name in ("max_user_exports", "max_user_clips"):
            if name in self.model_fields_set and getattr(self, name) > self.max_queued:
                raise ValueError(
                    f"jobs.{name} ({getattr(self, name)}) is above jobs.max_queued "
                    f"({self.max_queued}), which bounds every user together; lower it or "
                    "raise max_queued"
                )
        return self


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
    export_max_age: float | None = Field(
        7 * 86400.0, gt=0,
        description="Retention: seconds an export (`<data_dir>/exports`) is kept after it was "
        "written (default 7 days; null: for ever). An export of evidence-locked footage stays "
        "while the lock holds. Cached clips go with the recordings they were cut from.",
    )  # fmt: skip
    retention_interval: float = Field(
        60.0, gt=0, le=86400, description="Seconds between retention runs."
    )
    backend: Literal["auto", "threads", "processes", "ray"] = Field(
        "auto",
        description=(
            "How cameras run: 'threads' (every camera a thread of the one process), "
            "'processes' (worker processes, as many as `worker_processes`, or one per CPU "
            "core, at most one per camera, when that is 'auto'), 'ray' (every camera an "
            "actor on a Ray cluster, see the `cluster` section; needs PostgreSQL and the "
            "`cluster` extra), or 'auto': decided by `worker_processes` alone, as described "
            "there."
        ),
    )  # fmt: skip
    worker_processes: int | Literal["auto"] = Field(
        "auto",
        description=(
            "Camera analysis outside the main process: 0 runs every camera in a thread of "
            "one process; n > 0 spreads the cameras over n worker processes (frames cross "
            "in shared memory, the detector stays shared and batches across all of them); "
            "'auto' uses one per CPU core when there are more than 4 cameras per core, "
            "else threads (bench/capacity.py: on 2 cores, processes sustain more cameras "
            "for about 20-30 MB more per camera). With `backend: threads` it must be 0 or "
            "'auto', with `backend: processes` not 0."
        ),
    )  # fmt: skip

    trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Reverse proxies (addresses or CIDR ranges, e.g. `127.0.0.1/32`) whose "
            "`X-Forwarded-For` header names the client. None by default: the connecting "
            "address is the client, and the header is ignored (anyone could forge it)."
        ),
    )  # fmt: skip
    max_body_bytes: int = Field(
        1024 * 1024, ge=1024, description="Largest request body the API accepts (413 beyond)."
    )
    token_ttl: float = Field(
        90 * 86400.0, gt=0,
        description="Seconds an API token lives when its creator asks for no lifetime, and "
        "the longest it may live (default 90 days).",
    )  # fmt: skip
    login_max_failures: int = Field(
        5, ge=1, description="Failed logins on one account within `login_window` that lock "
        "it out until the window passes (shared by every process on the database).",
    )  # fmt: skip
    login_max_failures_per_address: int = Field(
        20, ge=1, description="Failed logins from one client address within `login_window` "
        "that lock the address out.",
    )  # fmt: skip
    login_window: float = Field(
        60.0, gt=0, le=86400, description="Seconds over which failed logins are counted."
    )
    outage_auth_ttl: float = Field(
        600.0, ge=0, le=86400,
        description="While the database is down, a session or API token it verified at most "
        "this many seconds ago still reads `/metrics` and `/api/cameras` (nothing else); "
        "0: those answer 503 too. A revocation made by another process shortly before an "
        "outage can be missed for this long (docs/architecture.md).",
    )  # fmt: skip
    password_hash_concurrency: int | None = Field(
        None, ge=1, le=64, description="Password hashes (Argon2id, 64 MiB each) computed at "
        "once; more logins wait briefly, then get 503. Default: one per core, at most 4.",
    )  # fmt: skip

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        out = []
        for cidr in value:
            try:
                out.append(str(ip_network(cidr, strict=False)))
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {cidr!r} is not an address or CIDR range, "
                                 "e.g. 10.0.0.0/8 or ::1") from exc  # fmt: skip
        return out

    @field_validator("worker_processes")
    @classmethod
    def _process_count(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 0 <= value <= 64:
            raise ValueError(f"worker_processes must be 0..64 or 'auto', got {value}")
        return value

    @model_validator(mode="after")
    def _backend_agrees(self) -> ServerConfig:
        count = self.worker_processes
        if self.backend == "threads" and isinstance(count, int) and count > 0:
            raise ValueError(
                f"backend is 'threads' but worker_processes is {count}; set worker_processes "
                "to 0 or 'auto', or backend to 'processes' or 'auto'"
            )
        if self.backend == "processes" and count == 0:
            raise ValueError(
                "backend is 'processes' but worker_processes is 0; set worker_processes to "
                "a number of processes or 'auto', or backend to 'threads' or 'auto'"
            )
        return self


class ClusterConfig(_Model):
    """`server.backend: ray`: the Ray cluster the cameras run on (docs/cluster.md)."""

    address: str = Field(
        "auto", min_length=1,
        description="The cluster: 'auto' (the one `ray start` made on this machine, or "
        "RAY_ADDRESS), 'local' (start a throw-away single-machine cluster, for trying it "
        "out), 'HOST:PORT' of a head's GCS, or 'ray://HOST:PORT' (Ray Client).",
    )  # fmt: skip
    max_restarts: int = Field(
        -1, ge=-1,
        description="How often Ray restarts a camera actor whose process or node died, on a "
        "node with a free camera slot (-1: for ever).",
    )  # fmt: skip
    detector_num_gpus: float = Field(
        0.0, ge=0, le=64,
        description="GPUs each detector actor asks for (0: runs on the CPU; 1: a whole GPU; "
        "fractions share one); a node runs one detector actor per model among its cameras, "
        "so with N models a node may need N times this.",
    )  # fmt: skip
    call_timeout: float = Field(
        5.0, gt=0, le=300,
        description="Seconds the head waits for a camera actor's answer (live frame, tracks, "
        "a rule change) and a camera for its node's detector, before reporting it down.",
    )  # fmt: skip
    cameras_per_actor: int = Field(
        4, ge=1, le=64,
        description="Cameras one actor process hosts, as a worker process does (fewer "
        "processes: less memory and CPU per camera); a group takes that many camera slots of "
        "one node, and fails over as a whole to a node with that many free. Groups are never "
        "bigger than the largest node's slots.",
    )  # fmt: skip
    replica: bool = Field(
        False,
        description="Serve the API only, beside the head (`vigil serve --replica`): place, "
        "supervise and stop no camera, reach the head's camera actors by name and read the "
        "same PostgreSQL (logins, lockouts and live grants hold on every replica). Needs the "
        "head's cluster: not with address 'local'.",
    )  # fmt: skip
    takeover_interval: float = Field(
        2.0, gt=0, le=300,
        description="Seconds between a replica's tries of the supervision lock (a PostgreSQL "
        "advisory lock that the supervising `vigil serve` holds): how soon a replica takes "
        "over from a head that died.",
    )  # fmt: skip
    hand_over: bool = Field(
        True,
        description="On a clean stop (SIGTERM, Ctrl-C) of the supervising `vigil serve`, "
        "hand the supervision to an API replica that stands by, if one does: the camera "
        "actors record on and are adopted, instead of being ended and started again. To stop "
        "the cameras, stop the replicas first (or set this false).",
    )  # fmt: skip
    namespace: str = Field(
        "vigil", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="The Ray namespace this deployment's actors live in. Deployments that "
        "share one Ray cluster need one each: a head adopts the camera, detector, writer and "
        "media actors it finds in its namespace and ends those it did not configure, so two "
        "with the same namespace end each other's cameras. Its replicas and `vigil cluster "
        "status --namespace` name the same one.",
    )  # fmt: skip
    rebalance: bool = Field(
        True,
        description="Move camera groups onto a node that came back or joined, one group a "
        "step, while a node runs at least a group's worth more per slot than another after "
        "the move (docs/cluster.md, Rebalancing). A move costs each of the group's cameras a "
        "recording gap of about a reconnection (the new group is started on the target "
        "first); false: cameras stay where they were placed or failed over to.",
    )  # fmt: skip
    rebalance_interval: float = Field(
        30.0, ge=1, le=86400,
        description="Seconds between rebalancing steps (one group moved a step at most), and "
        "how long a node must have been alive before it is moved onto.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _replica_of_a_head(self) -> ClusterConfig:
        if self.replica and self.address == "local":
            raise ValueError(
                "cluster.replica serves the cameras of a head's cluster, but address 'local' "
                "starts a new, empty one: give the head's address (HOST:PORT or 'auto')"
            )
        return self

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        value = value.strip()
        if value in ("auto", "local") or value.startswith("ray://"):
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(
                f"cluster address {value!r} is not 'auto', 'local', HOST:PORT or "
                "ray://HOST:PORT; e.g. 10.0.0.5:6379"
            )
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
        description="FFmpeg demuxer options for this input, e.g. `{rtsp_transport: tcp}`; "
        "`hwaccel: cuda` (and `hwaccel_device: N`) decode it on the GPU (docs/gpu.md).",
    )
    loop: bool = Field(
        False,
        description="A file input only: start again at its end, so a file serves as a camera "
        "for trying Vigil without one (a file camera always plays at its own frame rate, "
        "with wall-clock times, and is recorded like a stream).",
    )

    @model_validator(mode="after")
    def _loop_needs_a_file(self) -> SourceConfig:
        from vigil.ingest.base import is_network_url

        if self.loop and (is_network_url(self.url) or self.url.lower().startswith("synthetic:")):
            raise ValueError(f"loop is for file inputs; {self.url!r} is not a file")
        return self


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
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    mqtt: MqttConfig | None = Field(None, description="Publish events to an MQTT broker.")
    webhooks: WebhookConfig | None = Field(None, description="POST signed events to URLs.")
    zones: dict[str, ZoneConfig] = Field(
        default_factory=dict,
        description="Zones for `vigil analyze` (and cameras without any), by name. Zone and "
        f"line names (here and in a camera's `zones`/`lines`) are 1 to {RULE_NAME_MAX} "
        "characters, not blank: the database keeps counts by rule name.",
    )  # fmt: skip
    lines: dict[str, LineConfig] = Field(
        default_factory=dict,
        description=f"Lines for `vigil analyze` (and cameras without any), by name (1 to "
        f"{RULE_NAME_MAX} characters, not blank).",
    )  # fmt: skip
    cameras: dict[str, CameraConfig] = Field(
        default_factory=dict,
        description=f"The cameras of `vigil serve`, by name: letters, digits, '-' and '_', at "
        f"most {CAMERA_NAME_MAX} characters.",
    )  # fmt: skip
    data_dir: Path = Field(Path("vigil-data"), description="Where recordings and the DB live.")
    database_url: str | None = Field(
        None,
        description="sqlite:///path or postgresql://user:pass@host/db; default is SQLite "
        "(WAL) at <data_dir>/vigil.db.",
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_camera_defaults(cls, data: Any) -> Any:
        """The global sections under each camera's own, for a file and for code alike."""
        return merge_camera_defaults(data) if isinstance(data, Mapping) else data

    @model_validator(mode="after")
    def _rule_names(self) -> VigilConfig:
        problem = rule_names_problem(None, self.zones, self.lines)
        for name, cam in self.cameras.items():
            problem = problem or rule_names_problem(name, cam.zones, cam.lines)
        if problem is not None:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _names(self) -> VigilConfig:
        for name in self.cameras:
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"camera name {name!r} may hold only letters, digits, '-' and '_'")
            if len(name) > CAMERA_NAME_MAX:
                raise ValueError(
                    f"camera name {name[:20]!r}... is {len(name)} characters long; give it "
                    f"a name of at most {CAMERA_NAME_MAX} (the database keeps camera names, "
                    "and event ids made from them, in fixed-width columns)"
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
            redact=self.redact_for(name),
            zones=cam.zones or self.zones,
            lines=cam.lines or self.lines,
            enabled=cam.enabled,
            record=cam.record or self.record,
        )

    def redact_for(self, camera: str) -> RedactConfig:
        """The redaction in force for ``camera``: the global ``redact`` with the camera's own
        ``redact`` fields over it (the global one for a camera not configured, e.g. old
        recordings of a removed camera).

        The camera's section was merged over the global one at validation
        (``vigil.config.merge``), whether the configuration came from a file or from code. A
        camera's ``masks`` list replaces the global one (lists are not merged): polygons are
        fractions of one camera's view.
        """
        cam = self.cameras.get(camera)
        return self.redact if cam is None or cam.redact is None else cam.redact

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


def rule_names_problem(
    camera: str | None, zones: Mapping[str, object], lines: Mapping[str, object]
) -> str | None:
    """Why a zone or line name of ``camera`` (None: the top-level rules) cannot be kept, or
    None: an empty (or blank) one, which names no count, event or MQTT sensor anyone could
    tell apart, or one longer than ``RULE_NAME_MAX`` (the database's rule columns are that
    wide, so its counts could never be written)."""
    where = f"camera {camera!r}" if camera is not None else "the top-level rules"
    for kind, names in (("zone", zones), ("line", lines)):
        for name in names:
            if not name.strip():
                return (f"{where}: a {kind} has an empty name ({name!r}); give it a name of 1 "
                        f"to {RULE_NAME_MAX} characters, not only spaces (events, counts and "
                        f"MQTT sensors are named after it)")  # fmt: skip
            if len(name) > RULE_NAME_MAX:
                shown = name if len(name) <= 80 else name[:80] + "..."
                return (f"{where}: {kind} {shown!r} is {len(name)} characters long; "
                        f"give it a name of at most {RULE_NAME_MAX} (the database keeps rule "
                        "names in fixed-width columns)")  # fmt: skip
    return None
