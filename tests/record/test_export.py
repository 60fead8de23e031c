"""Signed exports: redacted by default, stream copy when granted; vigil verify catches tampering."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import av
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import require_file
from tests.record.conftest import T0, require_tool, segment_file
from vigil.cli import main
from vigil.config.models import RedactConfig
from vigil.errors import PrivacyError
from vigil.paths import shared_data_dir
from vigil.privacy import build_redactor, unredacted_access
from vigil.record.export import export_range, manifest_path, verify_export
from vigil.record.segmenter import SegmentInfo
from vigil.record.signing import load_or_create_key, public_pem


def test_key_file_is_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "k" / "export.pem"
    key = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert public_pem(load_or_create_key(path).public_key()) == public_pem(key.public_key())


def test_unredacted_needs_a_grant(segments35: list[SegmentInfo], tmp_path: Path) -> None:
    with pytest.raises(PrivacyError, match="audited"):
        export_range([s.path for s in segments35], T0, T0 + 5, tmp_path / "x.mp4",
                     key=Ed25519PrivateKey.generate(), redactor_factory=None)  # fmt: skip
    assert not list(tmp_path.iterdir())


def test_stream_copy_export_and_verify(segments35: list[SegmentInfo], tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path / "k.pem")
    grant = unredacted_access("court order 42", "tester", tmp_path / "audit.jsonl", "test")
    out = tmp_path / "copy.mp4"
    result = export_range([s.path for s in segments35[:3]], T0 + 5.3, T0 + 22.0, out, key=key,
                          redactor_factory=None, grant=grant)  # fmt: skip
    assert result.start == pytest.approx(T0 + 5.0)  # the keyframe before the start
    with av.open(str(out)) as c:
        assert c.duration / 1e6 == pytest.approx(17.0, abs=0.1)
        assert abs(sum(1 for _ in c.decode(video=0)) - 17 * 25) <= 3  # B-frames at the cut
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["redaction"]["mode"] == "none"
    assert manifest["redaction"]["reason"] == "court order 42"
    assert len(manifest["sources"]) == 3
    assert verify_export(out, trusted_key=key.public_key()).ok


@pytest.fixture(scope="module")
def face_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    clips_dir = require_file(shared_data_dir() / "clips")
    """The corridor GIF with faces, as 2 s H.264 segments, exported with the default redactor."""
    require_tool("ffmpeg")
    work = tmp_path_factory.mktemp("faces")
    mp4 = work / "faces.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i",
         str(clips_dir / "face-demographics-walking.gif"), "-c:v", "libx264", "-g", "5",
         "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", str(mp4)],
        check=True,
    )  # fmt: skip
    segments = segment_file(mp4, work, seconds=1.0)
    assert len(segments) >= 2
    out = work / "export.mp4"
    export_range([s.path for s in segments], T0, T0 + 10, out,
                 key=load_or_create_key(work / "k.pem"),
                 redactor_factory=lambda size: build_redactor(RedactConfig(), size))  # fmt: skip
    return out, mp4


def test_export_is_redacted_by_default(face_export: tuple[Path, Path]) -> None:
    out, original = face_export
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["redaction"]["mode"] == "faces"
    with av.open(str(out)) as a, av.open(str(original)) as b:
        ours = [f.to_ndarray(format="gray").astype(int) for f in a.decode(video=0)]
        theirs = [f.to_ndarray(format="gray").astype(int) for f in b.decode(video=0)]
    assert len(ours) == len(theirs)
    changed = [abs(x - y).max() > 60 for x, y in zip(ours, theirs, strict=True)]
    assert sum(changed) >= len(changed) // 2, "faces must have been blurred in most frames"


def test_verify_cli(
    face_export: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = face_export
    copy = tmp_path / out.name
    copy.write_bytes(out.read_bytes())
    manifest_path(copy).write_bytes(manifest_path(out).read_bytes())
    assert main(["verify", str(copy)]) == 0
    assert "verified" in capsys.readouterr().out

    wrong = tmp_path / "wrong.pem"
    load_or_create_key(wrong)
    assert main(["verify", str(copy), "--public-key", str(wrong)]) == 1
    assert "wrong key" in capsys.readouterr().out

    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    assert main(["verify", str(copy)]) == 1
    assert "changed bytes" in capsys.readouterr().out

    manifest = json.loads(manifest_path(copy).read_text())
    manifest["camera"] = "elsewhere"
    manifest_path(copy).write_text(json.dumps(manifest))
    assert main(["verify", str(copy)]) == 1
    assert "bad signature" in capsys.readouterr().out

    manifest_path(copy).unlink()
    assert main(["verify", str(copy)]) == 1
    assert "manifest missing" in capsys.readouterr().out


def test_export_cli_redacted(segments35: list[SegmentInfo], tmp_path: Path) -> None:
    recordings = segments35[0].path.parents[3]
    out = tmp_path / "cli.mp4"
    code = main(["export", str(recordings), "cam1", "2023-11-14T22:13:22Z",
                 "2023-11-14T22:13:31Z", str(out), "--key", str(tmp_path / "k.pem"),
                 "--no-progress"])  # fmt: skip
    assert code == 0
    assert verify_export(out).ok
    assert json.loads(manifest_path(out).read_text())["redaction"]["mode"] == "faces"


def _left_half_means(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    return [float(f[:, : f.shape[1] // 2 - 4].mean()) for f in frames]


@pytest.mark.parametrize("unredacted", [False, True])
def test_export_cli_follows_the_cameras_masks_from_the_config(
    segments35: list[SegmentInfo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    unredacted: bool,
) -> None:  # fmt: skip
    """``--config``: the camera's own redaction; its masks apply to unredacted exports too."""
    monkeypatch.setenv("VIGIL_AUDIT_FILE", str(tmp_path / "audit.jsonl"))
    config = tmp_path / "vigil.yaml"
    config.write_text("cameras:\n  cam1:\n    sources: [{url: x.mp4}]\n"
                      "    redact: {masks: [[[0, 0], [0.5, 0], [0.5, 1], [0, 1]]]}\n")  # fmt: skip
    recordings = segments35[0].path.parents[3]
    out = tmp_path / "masked.mp4"
    extra = ["--unredacted", "--reason", "court order 43"] if unredacted else []
    assert main(["export", str(recordings), "cam1", "2023-11-14T22:13:22Z",
                 "2023-11-14T22:13:25Z", str(out), "--key", str(tmp_path / "k.pem"),
                 "--config", str(config), "--no-progress", *extra]) == 0  # fmt: skip
    means = _left_half_means(out)
    assert means
    assert max(means) < 8, "the masked half is black in every frame"
    redaction = json.loads(manifest_path(out).read_text())["redaction"]
    assert (redaction["mode"], redaction["static_masks"]) == ("none" if unredacted else "faces", 1)
    assert verify_export(out).ok


def test_a_granted_redactor_needs_its_grant(segments35: list[SegmentInfo], tmp_path: Path) -> None:
    grant = unredacted_access("court order 44", "tester", tmp_path / "audit.jsonl", "test")
    config = RedactConfig(masks=[[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0)]])
    with pytest.raises(PrivacyError, match="grant"):
        export_range(
            [segments35[0].path],
            T0,
            T0 + 2,
            tmp_path / "x.mp4",
            key=Ed25519PrivateKey.generate(),
            redactor_factory=lambda size: build_redactor(config, size, grant=grant),
        )
    assert not (tmp_path / "x.mp4").exists()
