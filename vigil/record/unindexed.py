"""The journal of a camera's segments the store has not taken, and the sweep that indexes them.

A finished segment whose report to the store fails (the database is down or full) waits in
the recorder (``Segmenter.unreported``) and is given up after ``MAX_REPORT_ATTEMPTS`` tries;
a process stopped meanwhile forgets the waiting ones. Either way its file stays on disk with
no row: invisible in the timeline, never freed by retention. So the segmenter writes each such
segment to a small journal the first time its report fails,
``recordings/<camera>/.unindexed.jsonl`` (one JSON line per segment, what the recorder knew),
and takes it out once the segment is stored.

``reindex`` indexes the journal's given-up segments again, from the files themselves: each
is hashed (SHA-256) and, when it is the file the recorder wrote (same size and digest), it
gets the recorder's own span; a file that changed gets the span PyAV reads (every packet, as
start-up recovery reads a partial segment) and its new size and digest, from the start the
journal gives (the file name has only the second). A file that cannot be read is moved to
``quarantine/<camera>/…`` under the data dir (never served; counted, and aged by the
camera's ``max_age``: ``vigil.record.quarantine``), a
file that is gone is dropped from the journal. It runs before the recorders start and with
every retention pass (``Supervisor``), and at a cluster camera's start (``CameraActor``).
The Supervisor also sweeps the journals of camera folders no recorder of its own owns (a
camera removed from the configuration, or no longer recorded): ``orphan_journals``. Their
segments get rows like any other, so retention ages them by the default ``record`` limits,
as it does every stored segment of a removed camera; an empty journal is deleted.

Why a journal and not a scan of the recordings: the given-up segments lie in the middle of
the timeline once the database is back (the next segments are indexed), so a scan of only
what is newer than the newest row misses them, and a scan of every file against the
database reads the whole archive (a 100 TB one at each start). The journal costs nothing
while the database takes every segment (no file), and the sweep reads only the files it
lists. A segment left without a row by a process killed between completing its file and
writing its row (a fraction of a second) is not journaled: that window is not covered.

The journal is per camera, beside its recordings, so a cluster node's camera actors (one data
dir, several cameras) each read only their own, and the row gets the node of whoever indexes.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Container
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vigil.paths import sha256_file
from vigil.record.layout import parse_segment_path
from vigil.record.quarantine import QUARANTINE
from vigil.record.recovery import playable_span
from vigil.record.segmenter import SegmentInfo

log = logging.getLogger(__name__)

#: The journal's name in ``recordings/<camera>/`` (hidden: not a segment, not a day folder).
JOURNAL = ".unindexed.jsonl"


def _line(info: SegmentInfo, folder: Path) -> str:
    """One journal line; the path relative to the camera's folder (a moved data dir keeps
    its journal)."""
    row: dict[str, Any] = asdict(info)
    try:
        row["path"] = info.path.relative_to(folder).as_posix()
    except ValueError:
        row["path"] = str(info.path)
    return json.dumps(row, sort_keys=True)


def _info(row: dict[str, Any], folder: Path) -> SegmentInfo:
    return SegmentInfo(str(row["camera"]), folder / str(row["path"]), float(row["start"]),
                       float(row["end"]), int(row["size"]), str(row["sha256"]),
                       bool(row["has_audio"]))  # fmt: skip


class UnindexedJournal:
    """The journal of one camera's folder (see the module docstring); thread-safe.

    ``add`` a segment whose report failed (it is being retried: not given up), ``give_up``
    it when the recorder stops retrying, ``discard`` it once it is stored (or gone). Entries
    read from the file at start are given up: nothing retries them but ``reindex``.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / JOURNAL
        self._lock = threading.Lock()
        self._entries: dict[Path, SegmentInfo] = {}
        self._retrying: set[Path] = set()
        #: False when the file is there but could not be read: never deleted as empty.
        self._read = True
        self._load()

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            self._read = False
            log.error("cannot read %s (%s): its segments stay unindexed", self.path, exc)
            return
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                info = _info(json.loads(line), self.folder)
            except (ValueError, KeyError, TypeError) as exc:
                # A line cut short by a crash or a full disk: the others still count.
                log.warning("%s:%d: not a segment entry (%s); skipped", self.path, number, exc)
                continue
            self._entries[info.path] = info

    def add(self, info: SegmentInfo) -> None:
        """Journal ``info`` (its first report failed; the recorder retries it)."""
        with self._lock:
            self._retrying.add(info.path)
            if info.path in self._entries:
                return
            self._entries[info.path] = info
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(_line(info, self.folder) + "\n")
            except OSError as exc:  # the disk is full too: known in memory until a restart
                log.error("cannot journal unindexed segment %s in %s: %s", info.path.name,
                          self.path, exc)  # fmt: skip

    def give_up(self, path: Path) -> None:
        """The recorder stopped retrying ``path``: ``reindex`` takes it from now on."""
        with self._lock:
            self._retrying.discard(path)

    def discard(self, paths: list[Path]) -> None:
        """Take ``paths`` out (stored, or their file is gone); rewrites the journal, and
        deletes it once empty."""
        with self._lock:
            gone = [p for p in paths if p in self._entries]
            if not gone:
                return
            for path in gone:
                del self._entries[path]
                self._retrying.discard(path)
            self._write()

    def _write(self) -> None:
        try:
            if not self._entries:
                self.path.unlink(missing_ok=True)
                return
            temp = self.path.with_name(self.path.name + ".tmp")
            temp.write_text("".join(_line(i, self.folder) + "\n" for i in self._entries.values()),
                            encoding="utf-8")  # fmt: skip
            os.replace(temp, self.path)
        except OSError as exc:  # the next discard writes it again; a stale line is harmless
            log.warning("cannot rewrite %s: %s", self.path, exc)

    def drop_if_empty(self) -> bool:
        """Delete the journal's file when it read but lists no segment (only damaged lines,
        or emptied by hand); whether it did. Nothing else deletes such a file: ``discard``
        rewrites a journal only when an entry leaves it."""
        with self._lock:
            if self._entries or not self._read or not self.path.is_file():
                return False
            try:
                self.path.unlink()
            except OSError as exc:
                log.warning("cannot delete the empty journal %s: %s", self.path, exc)
                return False
            return True

    def given_up(self) -> list[SegmentInfo]:
        """The journaled segments nothing retries now, oldest first."""
        with self._lock:
            found = [i for p, i in self._entries.items() if p not in self._retrying]
        return sorted(found, key=lambda i: i.start)

    def __contains__(self, path: object) -> bool:
        with self._lock:
            return path in self._entries

    @property
    def count(self) -> int:
        """How many journaled segments are given up (the ``segments_unindexed`` figure)."""
        with self._lock:
            return len(self._entries) - len(self._retrying)


@dataclass(slots=True)
class ReindexReport:
    """What ``reindex`` did: segments indexed, found indexed already (a report whose answer
    was lost), moved to quarantine (path, why), dropped as gone, and why it stopped early
    (the store refused; the rest wait for the next sweep)."""

    indexed: list[Path] = field(default_factory=list)
    already: list[Path] = field(default_factory=list)
    quarantined: list[tuple[Path, str]] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    stopped: str | None = None


def orphan_journals(recordings: Path, owned: Container[str]) -> list[UnindexedJournal]:
    """The journals under ``recordings`` (``<data_dir>/recordings``) of the camera folders
    not in ``owned`` (the cameras this process records), by folder name: one directory
    listing and one ``stat`` per camera folder, so it runs with every retention pass."""
    try:
        folders = sorted(p for p in recordings.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
    return [UnindexedJournal(folder) for folder in folders
            if folder.name not in owned and (folder / JOURNAL).is_file()]  # fmt: skip


def quarantine_path(root: Path, segment: Path) -> Path:
    """Where ``segment`` (a file under ``root/recordings``) goes when it cannot be read."""
    try:
        rel = segment.resolve().relative_to((root / "recordings").resolve())
    except ValueError:
        rel = Path(segment.name)
    return root / QUARANTINE / rel


def _from_file(entry: SegmentInfo) -> SegmentInfo | None:
    """``entry`` as its file says now, or None when it does not read: the file hashed, and
    when it is the one the recorder wrote (same size and SHA-256) the recorder's own span;
    else the span PyAV reads (every packet) from the start of its name."""
    size, digest = entry.path.stat().st_size, sha256_file(entry.path)
    if (size, digest) == (entry.size, entry.sha256):
        return entry
    span = playable_span(entry.path)
    if span is None:
        return None
    seconds, has_audio = span
    start = entry.start
    try:
        named = parse_segment_path(entry.path)[1]
        if not named <= start < named + 1:  # the journal disagrees with the file's name
            start = named
    except ValueError:
        pass
    return SegmentInfo(entry.camera, entry.path, start, start + seconds, size, digest,
                       has_audio)  # fmt: skip


def reindex(
    journal: UnindexedJournal, root: Path, index: Callable[[SegmentInfo], None],
    stored: Callable[[SegmentInfo], bool] = lambda _info: False,
) -> ReindexReport:  # fmt: skip
    """Index ``journal``'s given-up segments (see the module docstring) with ``index``;
    ``stored``: whether a segment has its row already (then it only leaves the journal).
    The first ``index`` or ``stored`` that raises stops the sweep: the store is still down."""
    report = ReindexReport()
    done: list[Path] = []
    try:
        for entry in journal.given_up():
            if not entry.path.is_file():
                report.missing.append(entry.path)
                done.append(entry.path)
                continue
            try:
                if stored(entry):
                    report.already.append(entry.path)
                    done.append(entry.path)
                    continue
            except Exception as exc:
                report.stopped = f"{type(exc).__name__}: {exc}"
                break
            info = _from_file(entry)
            if info is None:
                _quarantine(root, entry.path, report)
                done.append(entry.path)
                continue
            try:
                index(info)
            except Exception as exc:
                report.stopped = f"{type(exc).__name__}: {exc}"
                break
            report.indexed.append(entry.path)
            done.append(entry.path)
    finally:
        journal.discard(done)
    _log(journal, report)
    return report


def _quarantine(root: Path, path: Path, report: ReindexReport) -> None:
    target = quarantine_path(root, path)
    why = "it does not play (no video, or a packet that does not read)"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    except OSError as exc:
        why += f"; it could not be moved ({exc}) and stays where it is"
    report.quarantined.append((path, why))
    log.warning("unindexed segment %s cannot be indexed: %s; moved to %s (never served; deleted "
                "once older than the camera's record.max_age: look at it before)", path, why,
                target)  # fmt: skip


def _log(journal: UnindexedJournal, report: ReindexReport) -> None:
    if report.indexed or report.quarantined or report.missing:
        log.warning("%s: %d unindexed segment(s) indexed, %d quarantined, %d gone",
                    journal.path.parent.name, len(report.indexed), len(report.quarantined),
                    len(report.missing))  # fmt: skip
    if report.stopped is not None:
        log.info("%s: %d unindexed segment(s) wait for the store (%s)",
                 journal.path.parent.name, journal.count, report.stopped)  # fmt: skip
