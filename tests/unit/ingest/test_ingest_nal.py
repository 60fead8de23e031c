"""Which H.264 packets no other frame refers to, from their NAL headers."""

from __future__ import annotations

import pytest

from vigil.ingest.nal import avcc_length_size, h264_disposable

# NAL header bytes: forbidden bit, nal_ref_idc (2 bits), nal_unit_type (5 bits).
IDR = 0x65  # ref_idc 3, type 5
P_REF = 0x41  # ref_idc 2, type 1
B_NONREF = 0x01  # ref_idc 0, type 1
SEI = 0x06  # ref_idc 0, type 6 (no slice)
SPS = 0x67


def avcc(*nals: bytes, size: int = 4) -> bytes:
    return b"".join(len(n).to_bytes(size, "big") + n for n in nals)


def annexb(*nals: bytes) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + n for n in nals)


def nal(header: int, payload: int = 12) -> bytes:
    return bytes([header]) + b"\x9a" * payload


@pytest.mark.parametrize("pack", ["avcc", "annexb"])
@pytest.mark.parametrize(
    ("nals", "disposable"),
    [
        ((nal(B_NONREF),), True),
        ((nal(SEI), nal(B_NONREF), nal(B_NONREF)), True),  # SEI + two non-ref slices
        ((nal(P_REF),), False),
        ((nal(IDR),), False),
        ((nal(B_NONREF), nal(P_REF)), False),  # one referenced slice is enough
        ((nal(SPS), nal(SEI)), False),  # no slice at all
        ((), False),
    ],
)
def test_disposable(pack: str, nals: tuple[bytes, ...], disposable: bool) -> None:
    data = avcc(*nals) if pack == "avcc" else annexb(*nals)
    size = 4 if pack == "avcc" else None
    assert h264_disposable(data, size) is disposable


def test_a_length_that_runs_past_the_packet_counts_as_needed() -> None:
    broken = (1000).to_bytes(4, "big") + nal(B_NONREF)
    assert h264_disposable(broken, 4) is False


def test_two_byte_lengths_and_the_avcc_length_size() -> None:
    assert h264_disposable(avcc(nal(B_NONREF), size=2), 2)
    assert avcc_length_size(bytes([1, 0x4D, 0x40, 0x1F, 0xFF, 0xE1, 0x00])) == 4
    assert avcc_length_size(bytes([1, 0x4D, 0x40, 0x1F, 0xFD, 0xE1, 0x00])) == 2
    assert avcc_length_size(b"\x00\x00\x00\x01\x67") is None  # Annex B extradata
    assert avcc_length_size(None) is None
