"""``WS /api/cameras/{name}/live.mp4ws``: the camera's live video as fragmented MP4.

Authentication as ``/api/ws/events``: ``?token=`` (API token) or the session cookie from the
same origin. ``width`` (default 640) bounds the picture; ``grant`` (from ``POST
.../live/unredacted``, operators and admins) makes it unredacted, static masks still on. One
audit record per stream, as the MJPEG stream writes.

Messages, server to client: one text message ``{"codec": "avc1.…", "mime": "video/mp4;
codecs=\\"avc1.…\\"", "mode": "encode"|"copy"}`` (``reason`` besides: why a granted view is
re-encoded, not copied), then binary ones: the init segment, then one media fragment per
frame from a keyframe on (``vigil.api.livevideo``). A copied stream whose camera reconnects
or changes its parameters (a new resolution) goes on on the same socket: another text message
(its ``codec`` may differ: the player calls ``SourceBuffer.changeType``), then the new init
segment, then fragments from its keyframe on, their timestamps continuing the old ones. A
re-encoded view whose picture changes size (the camera's resolution did, to another aspect
ratio) goes on the same way, with an init segment of the new size.

A granted unredacted view is the camera's own H.264 stream-copied from its recorder (on this
host or the cluster node recording it), at the recording stream's size (``width`` does not
apply), unless the camera has static masks or cannot be copied (``reason``), or the
client asks with ``encode=1`` for the re-encoded stream (constrained baseline: the player
does when its browser cannot play the copy's codec; ignored for redacted views, which are
always re-encoded).

The socket closes with 1008 when the caller may not watch (bad credential, unknown camera,
invalid grant) and later, like the MJPEG stream, when the credential, the account or the
grant stops being valid (checked every ``ACCOUNT_CHECK_S``) or the camera is gone, with 1011
when the encoder failed or a copied stream cannot go on (its camera now sends what cannot be
copied, or its feed was away for longer than ``COPY_GIVE_UP_S``: a camera actor on a cluster
node failing over to another node is followed on the same socket, as a reconnect is), 1001
when the server stops. The close frame's reason says why, in words.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from vigil.api.auth import Capability, Principal
from vigil.api.deps import get_state
from vigil.api.live import frame_time
from vigil.api.livevideo import LiveStream, VideoView, Viewer, codec_string
from vigil.api.routes.live import WS_POLICY, ws_principal
from vigil.api.routes.view import ACCOUNT_CHECK_S, _fingerprint, _still_allowed, granted
from vigil.api.state import AppState
from vigil.errors import AuthError, StorageError

sockets = APIRouter(tags=["live"])

#: Close codes (RFC 6455): the server goes away; the encoder failed.
WS_GOING_AWAY = 1001
WS_INTERNAL = 1011
#: Bounds of the ``width`` query parameter (as the MJPEG stream's).
MIN_WIDTH, MAX_WIDTH, DEFAULT_WIDTH = 16, 7680, 640
#: The longest reason a close frame carries (bytes).
MAX_REASON = 123


def _width(ws: WebSocket) -> int | None:
    raw = ws.query_params.get("width", str(DEFAULT_WIDTH))
    try:
        width = int(raw)
    except ValueError:
        return None
    return width if MIN_WIDTH <= width <= MAX_WIDTH else None


def _encode(ws: WebSocket) -> bool | None:
    """The ``encode`` query flag: "1" or "0" (absent: 0); None when it is neither."""
    raw = ws.query_params.get("encode", "0")
    return {"1": True, "0": False}.get(raw)


def _authorise(ws: WebSocket, state: AppState, name: str) -> tuple[Principal, VideoView, Any]:
    """The caller, its view and its grant; ``AuthError`` when it may not watch. Also writes
    the stream's audit record (runs in a worker thread: database reads)."""
    who = ws_principal(ws, state)
    if (
        not who.can(Capability.READ)
        or not who.sees(name)
        or frame_time(state.runtime, name) is None
    ):
        raise AuthError(f"camera {name!r} is not there or not yours to watch")
    width = _width(ws)
    if width is None:
        raise AuthError(f"width must be an integer {MIN_WIDTH}..{MAX_WIDTH}")
    encode = _encode(ws)
    if encode is None:
        raise AuthError("encode must be 0 or 1")
    token = ws.query_params.get("grant")
    found = None
    if token:
        found = granted(state, token, who, name)
        if found is None or not who.can(Capability.OPERATE):
            raise AuthError("the unredacted-live grant is not valid; ask for a new one")
    # Redacted views are always encoded: the flag would only split their shared encoder.
    view = VideoView(name, width, redacted=found is None, encode=encode and found is not None)
    details: dict[str, Any] = {"redacted": view.redacted, "width": width, "format": "fmp4"}
    if found is not None:
        details["grant"] = _fingerprint(found.token)
    state.audit(who, "camera.live", name, reason=None if found is None else found.reason,
                details=details)  # fmt: skip
    return who, view, token or None


@sockets.websocket("/api/cameras/{name}/live.mp4ws")
async def live_video_socket(ws: WebSocket, name: str) -> None:
    """Live H.264 fMP4 of ``name`` for Media Source Extensions (see the module docstring)."""
    state = get_state(ws)
    try:
        who, view, grant = await run_in_threadpool(_authorise, ws, state, name)
    except (AuthError, StorageError):
        await ws.close(code=WS_POLICY)
        return
    credential = ws.query_params.get("token") or ws.cookies.get("vigil_session")
    await ws.accept()
    viewer = Viewer(asyncio.get_running_loop())
    encoder = await run_in_threadpool(state.video.join, view, viewer)
    state.live_streams += 1
    code: int | None = None
    reason = ""
    try:
        async with anyio.create_task_group() as group:

            async def pump() -> None:
                nonlocal code, reason
                code, reason = await _pump(ws, state, encoder, viewer)
                group.cancel_scope.cancel()

            async def guard() -> None:
                nonlocal code, reason
                while not state.stopping.is_set():
                    await anyio.sleep(ACCOUNT_CHECK_S)
                    if frame_time(state.runtime, name) is None:
                        code, reason = WS_POLICY, f"camera {name!r} is not there any more"
                        break
                    if not await anyio.to_thread.run_sync(
                            _still_allowed, state, who, name, grant, credential):  # fmt: skip
                        code, reason = WS_POLICY, "the credential or the grant is not valid now"
                        break
                else:
                    code, reason = WS_GOING_AWAY, "the server stops"
                group.cancel_scope.cancel()

            async def watch() -> None:
                with contextlib.suppress(WebSocketDisconnect):
                    while (await ws.receive())["type"] != "websocket.disconnect":
                        pass  # messages from the client are ignored
                group.cancel_scope.cancel()

            group.start_soon(pump)
            group.start_soon(guard)
            group.start_soon(watch)
    finally:
        state.live_streams -= 1
        # Not in a worker thread: a cancelled task must still leave (it only sets flags).
        state.video.leave(view, viewer)
    if code is not None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await ws.close(code=code, reason=close_reason(reason))


def close_reason(text: str) -> str:
    """``text`` cut to what a close frame can carry (123 bytes of UTF-8, RFC 6455)."""
    data = text.encode()
    if len(data) <= MAX_REASON:
        return text
    return data[: MAX_REASON - 3].decode(errors="ignore") + "..."


async def _pump(
    ws: WebSocket, state: AppState, encoder: LiveStream, viewer: Viewer
) -> tuple[int, str]:
    """Send the viewer's queue until the encoder ends; the close code and reason to end with."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            data = await viewer.queue.get()
            if data is None:
                if state.stopping.is_set():
                    return WS_GOING_AWAY, "the server stops"
                return WS_INTERNAL, encoder.error or "the live stream ended"
            if is_init(data):  # an init segment (the first, or a copy's next): say what it holds
                codec = codec_string(data)
                head: dict[str, Any] = {"codec": codec, "mime": f'video/mp4; codecs="{codec}"',
                                        "mode": encoder.mode}  # fmt: skip
                if encoder.reason is not None:
                    head["reason"] = encoder.reason
                await ws.send_text(json.dumps(head))
            await ws.send_bytes(data)
    return WS_GOING_AWAY, ""


def is_init(data: bytes) -> bool:
    """Whether ``data`` is an init segment (it opens with ``ftyp``; a fragment with ``moof``)."""
    return data[4:8] == b"ftyp"
