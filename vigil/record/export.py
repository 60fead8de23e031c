"""Exports: an MP4 of a camera's time range, redacted by default, with a signed manifest.

``export_range`` writes ``OUT`` and ``OUT.manifest.json``. Two paths:

- redacted (the default in Vigil): every frame in ``[start, end)`` is decoded, passed through a
  ``Redactor`` (one for the whole export, so its temporal hold spans segment boundaries) and
  encoded as H.264; audio is copied. The cut is exact to the frame.
- unredacted (needs an ``UnredactedGrant``, i.e. an audited request): stream copy of the
  segments' packets. A copy can only begin on a keyframe, so it starts at the last keyframe at
  or before ``start`` (at most one GOP early) and ends before the first packet at ``end``.
  A camera with static masks has no stream copy: its masks apply even to unredacted output,
  so the caller passes a masks-only Redactor (built with the grant) and the frames are
  re-encoded as above.

The manifest lists the output's SHA-256, the source segments and their hashes, the range,
camera, redaction mode (the Redactor's own: ``none`` for a granted one) and the number of
static masks applied, creation time and tool version, and is signed with Ed25519 over its
canonical JSON (sorted keys, no spaces, UTF-8, without the ``signature`` field). The public
key and its fingerprint are inside, so anyone can check integrity; authenticity needs the
public key from a trusted place (``verify_export(..., trusted_key=...)``).

Fail closed: the video is written under a hidden ``.partial`` name and renamed only when
complete; on any error nothing is left behind.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vigil import __version__
from vigil.errors import ConfigError, PrivacyError, SourceError
from vigil.media.h264 import (
    CLOCK,
    EXPORT,
    Mp4Output,
    decode,
    open_input,
    partial_file,
    video_info,
)
from vigil.paths import sha256_file
from vigil.privacy.audit import UnredactedGrant
from vigil.privacy.redactor import Redactor
from vigil.record.layout import parse_segment_path
from vigil.record.signing import fingerprint, public_key_b64, public_key_from_b64, signature_valid

#: Builds the export's Redactor for a frame size ``(width, height)`` in pixels.
RedactorFactory = Callable[[tuple[int, int]], Redactor]
#: Called after each source segment with (segments done, segments in all).
ExportProgress = Callable[[int, int], None]
#: Called now and then with the fraction of the range written (0..1).
FractionProgress = Callable[[float], None]


@dataclass(frozen=True, slots=True)
class FaceSearch:
    """Search faces in the whole frame every ``full_every_s`` seconds only, in between where
    things move, where faces were and in ``hints`` (normalised 0-1 xyxy boxes where people
    are known to be, e.g. an event's box); see ``vigil.privacy.regions``."""

    full_every_s: float = 1.0
    hints: tuple[tuple[float, float, float, float], ...] = ()


MANIFEST_FORMAT = "vigil-export/1"


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    manifest: Path
    start: float  # UTC seconds the output's time 0 stands for
    end: float
    redaction: str
    packets: int  # video frames (redacted) or video packets (copy) written


def manifest_path(export: Path) -> Path:
    """``EXPORT.mp4.manifest.json`` beside the export."""
    return export.with_name(export.name + ".manifest.json")


def canonical_json(manifest: dict[str, Any]) -> bytes:
    """The signed bytes: the manifest without ``signature``, keys sorted, compact, UTF-8."""
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def export_range(
    segments: Sequence[Path],
    start: float,
    end: float,
    out: Path,
    *,
    key: Ed25519PrivateKey,
    redactor_factory: RedactorFactory | None,
    grant: UnredactedGrant | None = None,
    camera: str | None = None,
    starts: Sequence[float] | None = None,
    on_progress: ExportProgress | None = None,
    on_fraction: FractionProgress | None = None,
    face_search: FaceSearch | None = None,
) -> ExportResult:
    """Export ``[start, end)`` (UTC seconds) of ``segments`` into ``out`` plus its manifest.

    ``starts``: each segment's exact UTC start (from the store); by default read from the
    file layout (to the second). ``redactor_factory=None`` copies unredacted, which needs
    ``grant``; a factory of granted (unredacted) Redactors re-encodes with only the static
    masks applied. The manifest records the Redactor's mode, ``none`` when it is granted.
    ``face_search``: look for faces by regions between full passes (faster; None: every
    frame whole). The MP4 has its index (``moov``) first, so a player starts before the
    download ends; a redacted one has a keyframe at least every
    ``vigil.media.h264.KEYFRAME_EVERY_S``.
    """
    if not end > start:
        raise ConfigError(f"export end {_iso(end)} must be after its start {_iso(start)}")
    if redactor_factory is None and grant is None:
        raise PrivacyError(
            "an unredacted export needs an audited request (vigil.privacy.unredacted_access); "
            "pass a redactor factory for the default, redacted export"
        )
    sources = _sources(segments, starts)
    if not sources:
        raise SourceError("no recorded segments cover that time range; check camera and times")
    with partial_file(out) as partial:
        redaction: dict[str, Any] = {"mode": "none", "static_masks": 0}
        if redactor_factory is not None:
            first, written, redaction = _redacted(
                sources, start, end, partial, factory=redactor_factory,
                granted=grant is not None, on_progress=on_progress,
                on_fraction=on_fraction, face_search=face_search,
            )  # fmt: skip
        else:
            first, written = _copied(
                sources, start, end, partial, on_progress, on_fraction=on_fraction
            )
        if written == 0:
            raise SourceError(f"no video between {_iso(start)} and {_iso(end)} in the segments")
    cam = camera or _camera_of(sources[0][1])
    manifest = sign_manifest(
        _manifest(out, sources, cam, first, end, redaction=redaction, grant=grant), key
    )
    target = manifest_path(out)
    target.write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return ExportResult(out, target, first, end, str(redaction["mode"]), written)


def _sources(segments: Sequence[Path], starts: Sequence[float] | None) -> list[tuple[float, Path]]:
    if starts is not None and len(starts) != len(segments):
        raise ConfigError("starts must give one time per segment")
    pairs = []
    for i, path in enumerate(segments):
        if not path.is_file():
            raise SourceError(f"segment {path} is missing; was it deleted by retention?")
        pairs.append((starts[i] if starts is not None else parse_segment_path(path)[1], path))
    return sorted(pairs, key=lambda p: p[0])


def _camera_of(path: Path) -> str:
    try:
        return parse_segment_path(path)[0]
    except ValueError:
        return ""


def _manifest(
    out: Path, sources: list[tuple[float, Path]], camera: str, start: float, end: float,
    *, redaction: dict[str, Any], grant: UnredactedGrant | None,
) -> dict[str, Any]:  # fmt: skip
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "camera": camera,
        "start": _iso(start),
        "end": _iso(end),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "tool": f"vigil {__version__}",
        "redaction": dict(redaction),
        "files": [{"name": out.name, "size": out.stat().st_size, "sha256": sha256_file(out)}],
        "sources": [
            {"name": "/".join(p.parts[-3:]), "start": _iso(t), "sha256": sha256_file(p)}
            for t, p in sources
        ],
    }
    if grant is not None and redaction["mode"] == "none":
        manifest["redaction"].update(actor=grant.actor, reason=grant.reason, time=grant.time)
    return manifest


def sign_manifest(manifest: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``manifest`` with ``public_key``, ``key_fingerprint`` and ``signature`` set."""
    public = key.public_key()
    body = dict(manifest, public_key=public_key_b64(public), key_fingerprint=fingerprint(public))
    body.pop("signature", None)
    body["signature"] = base64.b64encode(key.sign(canonical_json(body))).decode("ascii")
    return body


# -- stream copy ------------------------------------------------------------------------------


class _Copier:
    """Muxes packets of several segments into one output on one timeline (output zero = base)."""

    def __init__(self, output: Mp4Output) -> None:
        self.output = output
        self.streams: dict[str, Any] = {}
        self.last: dict[str, int] = {}
        self.base: float | None = None
        self.videos = 0

    def add_streams(self, *templates: Any) -> None:
        """Output streams like ``templates``; all before the first packet (the MP4 header)."""
        for template in templates:
            self.streams[template.type] = self.output.add_copy(template)

    def write(self, packet: Any, seg_start: float) -> None:
        kind = packet.stream.type
        if kind not in self.streams:
            return  # a stream the first segment did not have cannot join a started MP4
        assert self.base is not None
        tb = packet.time_base
        offset = round(Fraction(seg_start - self.base) / tb) if seg_start != self.base else 0
        dts = (packet.dts if packet.dts is not None else packet.pts) + offset
        pts = (packet.pts if packet.pts is not None else dts - offset) + offset
        shift = max(0, self.last.get(kind, -1) + 1 - dts)
        packet.dts, packet.pts = dts + shift, pts + shift
        self.last[kind] = packet.dts
        packet.stream = self.streams[kind]
        self.output.mux(packet)
        self.videos += kind == "video"


def _packet_time(packet: Any, seg_start: float) -> float:
    ts = packet.pts if packet.pts is not None else packet.dts
    return seg_start + float(ts * packet.time_base)


def _copied(
    sources: list[tuple[float, Path]], start: float, end: float, partial: Path,
    on_progress: ExportProgress | None, *, on_fraction: FractionProgress | None,
) -> tuple[float, int]:  # fmt: skip
    with Mp4Output(partial) as output:
        copier = _Copier(output)
        with open_input(sources[0][1]) as first:
            copier.add_streams(*_av_streams(first))
        pending: list[tuple[Any, float]] = []
        pending_start = start
        for done, (seg_start, path) in enumerate(sources, 1):
            with open_input(path) as inp:
                for packet in inp.demux(*_av_streams(inp)):
                    if packet.size == 0 or (packet.dts is None and packet.pts is None):
                        continue
                    t = _packet_time(packet, seg_start)
                    is_video = packet.stream.type == "video"
                    if copier.base is None:
                        if is_video and packet.is_keyframe and (t <= start or not pending):
                            pending, pending_start = [], t
                        if pending or (is_video and packet.is_keyframe):
                            pending.append((packet, seg_start))
                        if is_video and t >= start and pending:
                            copier.base = pending_start
                            for held, held_start in pending:
                                if _packet_time(held, held_start) >= pending_start - 1e-6:
                                    copier.write(held, held_start)
                            pending = []
                        continue
                    # By decode order: a B-frame shown before ``end`` needs its reference,
                    # so the copy ends at the first packet *decoded* at or after ``end``.
                    dts = packet.dts if packet.dts is not None else packet.pts
                    if seg_start + float(dts * packet.time_base) < end:
                        copier.write(packet, seg_start)
            if on_progress is not None:
                on_progress(done, len(sources))
            if on_fraction is not None:
                on_fraction(done / len(sources))
        return (copier.base if copier.base is not None else start), copier.videos


# -- redacted ---------------------------------------------------------------------------------


def _redacted(
    sources: list[tuple[float, Path]], start: float, end: float, partial: Path,
    *, factory: RedactorFactory, granted: bool, on_progress: ExportProgress | None,
    on_fraction: FractionProgress | None, face_search: FaceSearch | None,
) -> tuple[float, int, dict[str, Any]]:  # fmt: skip
    """Decode, redact, encode; returns the output's start, its frames and what the manifest
    says of the redaction."""
    with open_input(sources[0][1]) as first:
        info = video_info(first.streams.video[0])
    size, rate = (info.width, info.height), info.rate
    redactor = factory(size)  # loaded before any output exists: a failure leaves no file
    if redactor.unredacted and not granted:
        # The manifest names who asked and why: it needs the grant, not only its Redactor.
        raise PrivacyError("an unredacted export needs its audited grant: pass grant= too")
    redaction = {"mode": "none" if redactor.unredacted else redactor.config.mode,
                 "static_masks": len(redactor.config.masks)}  # fmt: skip
    if face_search is not None:
        hints = np.array(
            [
                (x1 * size[0], y1 * size[1], x2 * size[0], y2 * size[1])
                for x1, y1, x2, y2 in face_search.hints
            ],
            np.float32,
        ).reshape(-1, 4)
        redactor.search_faces_in_regions(max(1, round(rate * face_search.full_every_s)), hints)
    span = end - start
    with Mp4Output(partial) as output:
        vout = output.add_h264(size, rate, EXPORT, time_base=CLOCK)
        audio = _Copier(output)
        audio.base = start
        with open_input(sources[0][1]) as first:
            if first.streams.audio:
                audio.add_streams(first.streams.audio[0])
        for done, (seg_start, path) in enumerate(sources, 1):
            with open_input(path) as inp:
                for packet in inp.demux(*_av_streams(inp)):
                    if packet.stream.type == "audio":
                        if packet.size and start <= _packet_time(packet, seg_start) < end:
                            audio.write(packet, seg_start)
                        continue
                    for frame in decode(packet, path):
                        t = seg_start + float(frame.pts * frame.time_base)
                        if not start <= t < end:
                            continue
                        image = redactor.process(frame.to_ndarray(format="bgr24"))
                        vout.write(image, round((t - start) / CLOCK))
                        if on_fraction is not None:
                            on_fraction(min(1.0, (t - start) / span))
            if on_progress is not None:
                on_progress(done, len(sources))
        return start, vout.frames, redaction


def _av_streams(container: Any) -> list[Any]:
    streams = [container.streams.video[0]]
    if container.streams.audio:
        streams.append(container.streams.audio[0])
    return streams


# -- verification -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of ``verify_export``: ``ok`` when ``problems`` is empty."""

    export: Path
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_export(export: Path, *, trusted_key: Ed25519PublicKey | None = None) -> VerifyReport:
    """Check the manifest's signature and every listed file's SHA-256 and size.

    With ``trusted_key`` the manifest must also be signed by that key (without it, a forger
    could re-sign with a key of their own: integrity, not authenticity).
    """
    path = manifest_path(export)
    if not path.is_file():
        return VerifyReport(export, [f"manifest missing: {path} (exports come with one)"])
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (ValueError, OSError) as exc:
        return VerifyReport(export, [f"manifest unreadable: {path} ({exc})"])
    problems = _check_signature(manifest, trusted_key)
    problems += _check_files(manifest, path.parent, export.name)
    return VerifyReport(export, problems, manifest)


def _check_signature(manifest: dict[str, Any], trusted: Ed25519PublicKey | None) -> list[str]:
    try:
        public = public_key_from_b64(str(manifest["public_key"]))
        signature = base64.b64decode(str(manifest["signature"]), validate=True)
    except (KeyError, ValueError) as exc:
        return [f"bad signature: the manifest's key or signature is missing or malformed ({exc})"]
    problems = []
    if manifest.get("key_fingerprint") != fingerprint(public):
        problems.append("bad signature: key_fingerprint does not match the public key")
    if not signature_valid(public, signature, canonical_json(manifest)):
        problems.append("bad signature: the manifest was changed after it was signed")
    if trusted is not None and fingerprint(trusted) != fingerprint(public):
        problems.append(
            f"wrong key: signed by {fingerprint(public)}, not by the trusted key "
            f"{fingerprint(trusted)}"
        )
    return problems


def _check_files(manifest: dict[str, Any], folder: Path, export_name: str) -> list[str]:
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        return ["manifest lists no files"]
    problems = []
    names = set()
    for entry in files:
        name = str(entry.get("name", "")) if isinstance(entry, dict) else ""
        names.add(name)
        if not name or Path(name).name != name or name in (".", ".."):
            problems.append(f"manifest names an unsafe file {name!r}")
            continue
        target = folder / name
        if not target.is_file():
            problems.append(f"missing file: {target}")
            continue
        if target.stat().st_size != entry.get("size") or sha256_file(target) != entry.get("sha256"):
            problems.append(f"changed bytes: {target} does not match its SHA-256 in the manifest")
    if export_name not in names:
        problems.append(f"the manifest does not cover {export_name}")
    return problems


def overlapping(
    segments: Sequence[tuple[Path, float, float]], start: float, end: float
) -> list[tuple[Path, float, float]]:
    """The ``(path, start, end)`` entries that overlap ``[start, end)``, oldest first."""
    return sorted((s for s in segments if s[1] < end and s[2] > start), key=lambda s: s[1])


__all__ = [
    "ExportResult",
    "FaceSearch",
    "RedactorFactory",
    "VerifyReport",
    "canonical_json",
    "export_range",
    "manifest_path",
    "overlapping",
    "sign_manifest",
    "verify_export",
]
