"""``Supervisor.set_switch("detection")``, what Home Assistant's switch calls: analysis stops
(frames still arrive for the live view, open events end) and resumes, in a thread and in a
worker process, where the switch also survives the process being killed and restarted."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

pytest.importorskip("sqlalchemy", reason="the server extra is not installed")

from tests.runtime.test_supervisor import ListSink, fast_backoff, make_config, wait_for
from vigil.errors import VigilError
from vigil.runtime.serve import Supervisor
from vigil.types import EventState

SCENE = "synthetic://?width=320&height=180&fps=10&duration=600"


@pytest.mark.parametrize("processes", [0, 1], ids=["thread", "process"])
def test_detection_switch_stops_and_resumes_analysis(tmp_path: Path, processes: int) -> None:
    seen = ListSink()
    config = make_config(tmp_path, {"a": {"sources": [{"url": SCENE}]}})
    supervisor = Supervisor(config, sinks=[seen], backoff=fast_backoff,
                            worker_processes=processes)  # fmt: skip
    supervisor.start()
    try:
        cam = supervisor.workers["a"]
        wait_for(lambda: cam.analysed > 5 and any(e.state is EventState.START
                 for e in seen.events), 60, "no analysis and no event")  # fmt: skip
        supervisor.set_switch("a", "detection", False)
        assert cam.detection is False
        wait_for(lambda: _all_closed(seen), 30, "open events did not end")
        if processes:
            pid = supervisor.pool.workers[0].process.pid  # type: ignore[union-attr]
            os.kill(pid, signal.SIGKILL)
            # Its first report replaces the dead process's figures.
            wait_for(lambda: cam.restarts == 1 and cam.state == "running", 60,
                     "the worker process was not restarted")  # fmt: skip
        frames = cam.frames
        wait_for(lambda: cam.frames > frames + 10, 60, "frames stopped arriving")
        analysed = cam.analysed
        wait_for(lambda: cam.frames > frames + 20, 60, "frames stopped arriving")
        assert cam.analysed == analysed, "frames were analysed while detection was off"
        supervisor.set_switch("a", "detection", True)
        wait_for(lambda: cam.analysed > analysed + 3, 60, "analysis did not resume")
        with pytest.raises(VigilError, match="no 'recording' switch"):
            supervisor.set_switch("a", "recording", False)  # a synthetic scene is not recorded
    finally:
        supervisor.stop()


def _all_closed(sink: ListSink) -> bool:
    opened = {e.id for e in sink.events}
    return opened == {e.id for e in sink.events if e.state is EventState.END}
