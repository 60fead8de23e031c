"""MOTChallenge I/O, ``run_track_mot`` and ``vigil track-mot`` on TUD-Campus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from vigil.boxes import iou_matrix
from vigil.cli import main
from vigil.errors import ConfigError, SourceError, StorageError
from vigil.track.mot import MotWriter, normalise_scores, read_mot_detections, write_mot_tracks
from vigil.types import Detections


def test_read_groups_by_frame_and_converts_boxes(tmp_path: Path) -> None:
    path = tmp_path / "det.txt"
    path.write_text(
        "1,-1,10,20,30,40,0.9,-1,-1,-1\n3,-1,0,0,5,5,0.6,-1,-1,-1\n1,-1,1,2,3,4,0.7,-1,-1,-1\n"
    )
    frames = read_mot_detections(path)
    assert [len(f) for f in frames] == [2, 0, 1]
    assert frames[0].xyxy.tolist() == [[10, 20, 40, 60], [1, 2, 4, 6]]
    assert frames[0].confidence.tolist() == pytest.approx([0.9, 0.7])
    assert frames[2].class_id.tolist() == [0]


@pytest.mark.parametrize(
    ("scores", "mode", "expected"),
    [
        ([0.5, 0.75, 1.0], "auto", [0.5, 0.75, 1.0]),  # already 0..1: kept
        ([-1.0, 0.0, 3.0], "auto", [0.0, 0.25, 1.0]),  # DPM-like: min-max
        ([0.5, 0.75, 1.0], "minmax", [0.0, 0.5, 1.0]),
        ([-1.0, 3.0], "keep", [-1.0, 3.0]),
        ([2.0, 2.0], "auto", [1.0, 1.0]),
    ],
)
def test_normalise_scores(scores: list[float], mode: str, expected: list[float]) -> None:
    out = normalise_scores(np.array(scores), mode)  # type: ignore[arg-type]
    assert out.tolist() == pytest.approx(expected)


def test_writer_reader_round_trip(tmp_path: Path) -> None:
    tracked = [
        Detections(np.array([[10.5, 20.25, 40.0, 60.0]]), tracker_id=np.array([3])),
        Detections.empty(),
        Detections(np.array([[1, 2, 3, 4], [5, 6, 9, 9]]), tracker_id=np.array([3, -1])),
    ]
    path = tmp_path / "out" / "tracks.txt"
    write_mot_tracks(path, tracked)
    lines = path.read_text().splitlines()
    assert lines == [
        "1,3,10.50,20.25,29.50,39.75,1,-1,-1,-1",
        "3,3,1.00,2.00,2.00,2.00,1,-1,-1,-1",  # the untracked row (-1) is not written
    ]
    back = read_mot_detections(path)
    assert np.allclose(back[0].xyxy, tracked[0].xyxy)
    assert np.allclose(back[2].xyxy, tracked[2].xyxy[:1])


def test_writer_refuses_use_after_close_and_bad_frames(tmp_path: Path) -> None:
    with MotWriter(tmp_path / "t.txt") as writer, pytest.raises(ValueError, match="start at 1"):
        writer.write(0, Detections.empty())
    with pytest.raises(StorageError, match="closed"):
        writer.write(1, Detections.empty())


@pytest.mark.parametrize(
    ("content", "message"),
    [("1,-1,a,b,c,d,e\n", "not a MOTChallenge line"), ("1,-1,1,2,3\n", "at least 7")],
)
def test_reader_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "det.txt"
    path.write_text(content)
    with pytest.raises(SourceError, match=message):
        read_mot_detections(path)


def test_reader_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="check the path"):
        read_mot_detections(tmp_path / "nope.txt")


def _mota_idsw(gt: np.ndarray, hyp: np.ndarray) -> tuple[float, int]:
    """CLEAR-MOT MOTA at IoU 0.5, simplified: per-frame Hungarian matching plus id switches
    counted against each object's previous match (what motmetrics does, minus its preference
    for keeping last frame's pairs)."""
    fp = fn = switches = 0
    last: dict[int, int] = {}
    for f in range(1, int(gt[:, 0].max()) + 1):
        g, h = gt[gt[:, 0] == f], hyp[hyp[:, 0] == f]
        gx = np.c_[g[:, 2:4], g[:, 2:4] + g[:, 4:6]]
        hx = np.c_[h[:, 2:4], h[:, 2:4] + h[:, 4:6]]
        iou = iou_matrix(gx, hx)
        rows, cols = linear_sum_assignment(-iou) if iou.size else ([], [])
        pairs = [(r, c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= 0.5]
        fn += len(g) - len(pairs)
        fp += len(h) - len(pairs)
        for r, c in pairs:
            oid, hid = int(g[r, 1]), int(h[c, 1])
            switches += oid in last and last[oid] != hid
            last[oid] = hid
    return 1.0 - (fp + fn + switches) / len(gt), switches


def test_track_mot_cli_on_tud_campus(
    mot15_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seq = mot15_dir / "TUD-Campus"
    gt = np.loadtxt(seq / "gt" / "gt.txt", delimiter=",")
    ref_mota, _ = _mota_idsw(gt, np.loadtxt(seq / "reference-result.txt", delimiter=","))
    assert ref_mota == pytest.approx(0.526, abs=0.01)  # the evaluator reproduces the paper

    out = tmp_path / "tracks.txt"
    assert main(["track-mot", str(seq / "det" / "det.txt"), str(out), "--fps", "25"]) == 0
    assert "tracks written" in capsys.readouterr().out
    hyp = np.loadtxt(out, delimiter=",", ndmin=2)
    ids = hyp[:, 1].astype(int)
    assert ids.min() >= 1
    for frame in np.unique(hyp[:, 0]):
        frame_ids = ids[hyp[:, 0] == frame]
        assert len(frame_ids) == len(set(frame_ids))  # an id once per frame
    assert 6 <= len(set(ids)) <= 20  # 8 people walk through TUD-Campus
    mota, switches = _mota_idsw(gt, hyp)
    assert mota > ref_mota
    assert switches <= 10  # motmetrics counts 3 here; this simpler matcher counts more


def test_track_mot_cli_with_config(mot15_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text("tracker:\n  min_hits: 1\n  lost_seconds: 0.5\n")
    out = tmp_path / "tracks.txt"
    det = mot15_dir / "TUD-Campus" / "det" / "det.txt"
    assert main(["track-mot", str(det), str(out), "--config", str(config)]) == 0
    assert out.stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "code"),
    [(["missing.txt", "out.txt"], 2), (["det.txt", "out.txt", "--fps", "0"], 2)],
)
def test_track_mot_cli_errors(
    tmp_path: Path, args: list[str], code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "det.txt").write_text("1,-1,0,0,10,10,0.9,-1,-1,-1\n")
    argv = ["track-mot", *[str(tmp_path / a) if a.endswith(".txt") else a for a in args]]
    assert main(argv) == code
    assert "error" in capsys.readouterr().err


def test_run_track_mot_refuses_bad_fps(tmp_path: Path) -> None:
    from vigil.track.mot import run_track_mot

    with pytest.raises(ConfigError, match="fps"):
        run_track_mot(tmp_path / "det.txt", tmp_path / "out.txt", -1.0)
