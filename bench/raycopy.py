"""Granted unredacted live video from cameras on a Ray node: stream copy against re-encode.

A local Ray cluster (``tests/ray_cluster.py``: a head without camera slots, one worker node),
PostgreSQL, ``--cameras`` RTSP cameras of ``one-by-one-person-detection.mp4`` (768x432 H.264
Main, 10 fps) recorded on the node, the API on the head's ``Supervisor``; one granted
unredacted WebSocket per camera (``TestClient``, in this process), for each mode:

* ``copy``: the camera actor's ``CopyFeed`` muxes the recorder's packets on the node and the
  head pulls the fMP4 chunks (``RemoteCopy``, one long-poll call per frame or fewer);
* ``encode``: ``?encode=1``, the head re-encodes: each frame is fetched from the actor
  (``latest_frame``, a decoded 768x432 picture per call) and encoded with libx264.

CPU (user + system, % of one core) of this process (the head: API and Supervisor) and of
the camera actor process on the node (``ray::CameraGroup``) is measured over ``--window``
seconds with no stream (the baseline: recording and analysis), then with the streams; the
difference divided by the cameras is the cost per stream, on each side. Also: fps delivered
and bytes per second per stream. Ray's own processes (raylets, GCS) are left out.

    python bench/raycopy.py [--cameras 1] [--window 20] [--modes copy encode]

Writes ``bench/results/raycopy.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster import _cpu_s, _kind, _tree
from tests.cluster.conftest import cluster_config, fast_backoff, start_relay
from tests.ray_cluster import local_cluster
from tests.store.conftest import _TEMPLATE, new_pg_database, start_server
from vigil.api import ApiSettings, create_app
from vigil.api.auth import hash_password
from vigil.cluster import NAMESPACE
from vigil.cluster.backend import RayBackend
from vigil.cluster.lean import LEAN_HEAD_PARAMS, LEAN_SYSTEM_CONFIG
from vigil.paths import shared_data_dir
from vigil.runtime.serve import Supervisor
from vigil.store import Database, Role, UserRepo

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

CLIP = "one-by-one-person-detection.mp4"
PASSWORD = "correct horse battery"
RESULTS = Path(__file__).resolve().parent / "results"


def cpu_by_side(exclude: set[int], window: float) -> dict[str, float]:
    """CPU (% of one core) over ``window`` s of this process (``head``) and of the camera
    actor processes (``node``)."""
    pids = [p for p in _tree(os.getpid(), exclude)
            if p == os.getpid() or _kind(p).startswith("ray::CameraGroup")]  # fmt: skip
    before = {p: _cpu_s(p) for p in pids}
    started = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - started
    head = 100 * (_cpu_s(os.getpid()) - before[os.getpid()]) / elapsed
    node = sum(100 * (_cpu_s(p) - before[p]) / elapsed for p in pids if p != os.getpid())
    return {"head": head, "node": node}


def streams(client: TestClient, names: list[str], query: str, seconds: float,
            started: threading.Event) -> dict[str, tuple[int, int, float, str]]:  # fmt: skip
    """One granted WebSocket per camera for ``seconds``: messages, bytes, span, the head."""
    out: dict[str, tuple[int, int, float, str]] = {}

    def watch(name: str) -> None:
        grant = client.post(f"/api/cameras/{name}/live/unredacted",
                            json={"reason": "benchmark"}).json()["grant"]  # fmt: skip
        with client.websocket_connect(f"/api/cameras/{name}/live.mp4ws?grant={grant}"
                                      f"&width=768{query}") as ws:  # fmt: skip
            head = ws.receive_text()
            ws.receive_bytes()
            started.set()
            got = size = 0
            first = time.monotonic()
            while time.monotonic() < first + seconds:
                size += len(ws.receive_bytes())
                got += 1
            out[name] = (got, size, time.monotonic() - first, head)

    threads = [threading.Thread(target=watch, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out


def run_mode(mode: str, client: TestClient, names: list[str], window: float,
             exclude: set[int]) -> dict[str, Any]:  # fmt: skip
    baseline = cpu_by_side(exclude, window)
    started, result = threading.Event(), {}
    seconds = window + 6
    runner = threading.Thread(
        target=lambda: result.update(
            streams(client, names, "&encode=1" if mode == "encode" else "", seconds, started)
        )
    )
    runner.start()
    started.wait(120)
    time.sleep(3)  # the streams settle
    loaded = cpu_by_side(exclude, window)
    runner.join()
    heads = {json.loads(head)["mode"] for *_, head in result.values()}
    assert heads == {mode}, f"asked for {mode}, got {heads}"
    n = len(names)
    return {
        "mode": mode, "cameras": n,
        "fps": round(statistics.mean(got / span for got, _, span, _ in result.values()), 1),
        "kbytes_per_s": round(statistics.mean(b / span for _, b, span, _ in result.values())
                              / 1024, 1),
        "head_cpu_per_stream_pct": round((loaded["head"] - baseline["head"]) / n, 1),
        "node_cpu_per_stream_pct": round((loaded["node"] - baseline["node"]) / n, 1),
        "baseline": {k: round(v, 1) for k, v in baseline.items()},
        "loaded": {k: round(v, 1) for k, v in loaded.items()},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--modes", nargs="+", default=["copy", "encode"],
                        choices=["copy", "encode"])  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray

    pg = start_server()
    pg.admin_sql(f"CREATE DATABASE {_TEMPLATE}")
    template = Database(pg.url(_TEMPLATE))
    template.migrate()
    template.close()
    relay, mounts = start_relay(shared_data_dir() / "clips", args.cameras, (CLIP,))
    exclude = {relay.server.pid, *(m.publisher.pid for m in mounts if m.publisher)}
    root = Path(tempfile.mkdtemp(prefix="vigil-bench-raycopy-"))
    rows = []
    try:
        url = new_pg_database(pg)
        with local_cluster(root / "nodes", workers=1, slots=args.cameras,
                           system_config=LEAN_SYSTEM_CONFIG,
                           head_params=LEAN_HEAD_PARAMS) as cluster:  # fmt: skip
            ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
            config = cluster_config(root / "data", url, cluster.address,
                                    {m.path: m.url for m in mounts})  # fmt: skip
            db = Database(url)
            with db.session() as session:
                UserRepo(session).add("bench", Role.OPERATOR, hash_password(PASSWORD))
            supervisor = Supervisor(config, db=db, backoff=fast_backoff, stall_timeout=5.0,
                                    cluster_backend=RayBackend)  # fmt: skip
            app = create_app(ApiSettings(secure_cookies=False, job_workers=0), db, supervisor,
                             data_dir=root / "data")  # fmt: skip
            client = TestClient(app)
            supervisor.start()
            try:
                login = client.post("/api/login", json={"name": "bench", "password": PASSWORD})
                client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
                deadline = time.monotonic() + 240
                while not all(s.online and s.recording == "recording"
                              for s in supervisor.cameras()):  # fmt: skip
                    if time.monotonic() > deadline:
                        raise SystemExit("the cameras did not come online")
                    time.sleep(0.5)
                time.sleep(5)
                names = [m.path for m in mounts]
                for mode in args.modes:
                    rows.append(run_mode(mode, client, names, args.window, exclude))
                    print(json.dumps(rows[-1]))
            finally:
                app.state.vigil.video.stop_all()
                supervisor.stop()
                client.close()
                db.close()
                ray.shutdown()
    finally:
        for mount in mounts:
            mount.unpublish()
        relay.stop()
        pg.stop()
    RESULTS.mkdir(exist_ok=True)
    out = {"load": os.getloadavg(), "rows": rows}
    (RESULTS / "raycopy.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
