"""Credential masking and URL classification."""

from __future__ import annotations

import pytest

from vigil.ingest import is_network_url, mask_credentials, open_source
from vigil.ingest.av_source import AvSource


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/stream1", "rtsp://admin:***@10.0.0.5:554/stream1"),
        ("rtsps://u:p@cam/x", "rtsps://u:***@cam/x"),
        ("https://user:s3cret@example.com/live.m3u8", "https://user:***@example.com/live.m3u8"),
        ("rtsp://admin:p@ss@cam/x", "rtsp://admin:***@cam/x"),
        ("rtsp://admin:@cam/x", "rtsp://admin:***@cam/x"),
        ("rtsp://admin@cam/x", "rtsp://admin@cam/x"),
        ("rtsp://cam:554/x", "rtsp://cam:554/x"),
        ("/videos/a:b@c.mp4", "/videos/a:b@c.mp4"),
        (
            "cannot open rtsp://a:b@h/x: refused; retry rtsp://c:d@h/y later",
            "cannot open rtsp://a:***@h/x: refused; retry rtsp://c:***@h/y later",
        ),
    ],
)
def test_mask_credentials(text: str, masked: str) -> None:
    assert mask_credentials(text) == masked


@pytest.mark.parametrize(
    ("url", "network"),
    [
        ("rtsp://cam/x", True),
        ("RTSPS://cam/x", True),
        ("http://cam/x.mjpg", True),
        ("https://cdn/live.m3u8", True),
        ("/data/clip.mp4", False),
        ("clip.gif", False),
        ("file:///data/clip.mp4", False),
        ("synthetic://", False),
    ],
)
def test_is_network_url(url: str, network: bool) -> None:
    assert is_network_url(url) is network


def test_av_source_defaults_follow_the_url() -> None:
    camera = AvSource("rtsp://u:pw@cam/x")
    assert (camera.live, camera.reconnect) == (True, True)
    assert "pw" not in repr(camera)
    file = AvSource("/data/clip.mp4")
    assert (file.live, file.reconnect) == (False, False)
    forced = AvSource("/data/clip.mp4", live=True, reconnect=False)
    assert (forced.live, forced.reconnect) == (True, False)


def test_open_source_picks_the_implementation() -> None:
    assert isinstance(open_source("/data/clip.mp4", "cam1"), AvSource)
    assert type(open_source("synthetic://")).__name__ == "SyntheticSource"
