"""Which H.264 packets no other frame depends on (non-reference pictures).

A frame the sampler will drop need not be decoded at all when nothing refers to it: its
packet can be left out of the decoder and every other frame still decodes bit for bit the
same. H.264 says so in each slice's NAL header (``nal_ref_idc == 0``). FFmpeg's own
``skip_frame`` options act on every frame of a kind (``NONREF`` would drop frames the sampler
wants too), so the choice is made per packet here, from the header bytes alone.

Packets come length-prefixed (MP4/MKV, the ``avcC`` extradata says how many bytes the length
takes) or in Annex B with start codes (MPEG-TS, raw streams, RTSP); both are read.
"""

from __future__ import annotations

#: NAL unit types that carry a coded slice (non-IDR 1..4, IDR 5).
_SLICES = frozenset({1, 2, 3, 4, 5})


def avcc_length_size(extradata: bytes | None) -> int | None:
    """Bytes of each NAL length prefix from ``avcC`` extradata; None for Annex B streams."""
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None
    return (extradata[4] & 0x03) + 1


def _annexb_headers(data: bytes) -> list[int]:
    headers: list[int] = []
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0 and pos + 3 < len(data):
        headers.append(data[pos + 3])
        pos = data.find(b"\x00\x00\x01", pos + 3)
    return headers


def _avcc_headers(data: bytes, length_size: int) -> list[int] | None:
    headers: list[int] = []
    pos = 0
    while pos + length_size < len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        if size <= 0 or pos + length_size + size > len(data):
            return None  # not what the extradata announced: decode it rather than guess
        headers.append(data[pos + length_size])
        pos += length_size + size
    return headers


def h264_disposable(data: bytes, length_size: int | None) -> bool:
    """Whether this H.264 packet holds only non-reference slices (and at least one).

    ``length_size`` from :func:`avcc_length_size` (None: Annex B). Anything unreadable,
    and packets with no slice at all (parameter sets), count as needed.
    """
    headers = _annexb_headers(data) if length_size is None else _avcc_headers(data, length_size)
    if not headers:
        return False
    slices = [h for h in headers if h & 0x1F in _SLICES]
    return bool(slices) and all((h >> 5) & 0x03 == 0 for h in slices)
