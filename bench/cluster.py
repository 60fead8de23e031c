"""Cluster: the same N cameras with the process backend and with the Ray backend, on this
machine, and the failover time of the Ray backend over node kills.

Each camera is an RTSP stream of ``one-by-one-person-detection.mp4`` (768x432, 10 fps, a
keyframe every second) through one relay (``rtsp-server-perl``), analysed with the motion
detector at 5 fps and recorded continuously in 2 s segments, events and counts into a
throw-away PostgreSQL (both backends: the Ray backend refuses SQLite).

1. ``processes``: the ``Supervisor`` in this process with ``--processes`` worker processes.
2. ``ray``: a local Ray cluster of ``--nodes`` worker nodes (``tests/ray_cluster.py``,
   ``--slots`` camera slots each, the head none) and the ``Supervisor`` on the head with
   ``server.backend: ray``.

For each, after ``--warmup`` seconds, CPU (user + system) and RSS are summed over this
process and every process it started (worker processes; for Ray also the GCS, raylets, the
camera and detector actors), except the relay, its publishers and PostgreSQL, over a
``--window`` of seconds; the ratios ray / processes are printed. Then ``--kills`` times: the
node running the most cameras is killed, the seconds until its cameras are online again on
other nodes are measured, and a fresh node joins (so there are free slots for the next
kill); p50 and max are printed. The head's node health checks run every second, four missed
ones declaring a node dead (``FAST_FAILURE_DETECTION``; Ray's default takes about 15 s).

    python bench/cluster.py [--cameras 4] [--processes 2] [--nodes 3] [--kills 5]
                            [--warmup 20] [--window 30] [--slots 2]
                            [--cameras-per-actor 4] [--lean | --no-lean]

``--cameras-per-actor 1 --no-lean`` is the Ray backend as it was before camera groups and
the lean settings (one actor process per camera, Ray's default processes). Besides the
totals, each backend's usage is broken down by kind of process (``by_kind``: camera actors,
each Ray system process, the bench itself), with PSS next to RSS: RSS counts a shared page
(Python, NumPy, Ray's libraries) once in every process mapping it, PSS divides it among them.

Writes ``bench/results/cluster.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster.conftest import Mount, cluster_config, fast_backoff, start_relay
from tests.ray_cluster import FAST_FAILURE_DETECTION, local_cluster
from tests.store.conftest import _TEMPLATE, PgServer, new_pg_database, start_server
from vigil.cluster import NAMESPACE
from vigil.cluster.backend import RayBackend
from vigil.cluster.lean import LEAN_HEAD_PARAMS, LEAN_SYSTEM_CONFIG
from vigil.paths import shared_data_dir
from vigil.runtime.serve import Supervisor
from vigil.store import Database

CLIP = "one-by-one-person-detection.mp4"
TICKS = os.sysconf("SC_CLK_TCK")
RESULTS = Path(__file__).resolve().parent / "results"


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _tree(root: int, exclude: set[int]) -> list[int]:
    """``root`` and its descendants, without ``exclude`` and theirs."""
    tree, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        if pid in exclude:
            continue
        out.append(pid)
        todo.extend(tree.get(pid, []))
    return out


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _pss_mb(pid: int) -> float:
    """Proportional set size: shared pages (libraries, Python's own) divided among the
    processes mapping them, so a sum over processes counts each page once."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _kind(pid: int) -> str:
    """What a process is, from its command line: a Ray worker's title (``ray::CameraActor``,
    ``ray::IDLE``), a Ray system process, or this bench's own / a worker process."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return "?"
    if words[0].startswith("ray::"):
        return words[0].split(".")[0].split()[0]
    if pid == os.getpid():
        return "bench (Supervisor)"
    for word in words[:4]:
        name = Path(word).name
        if name in ("raylet", "gcs_server"):
            return name
        if name.endswith(".py"):
            return f"python {Path(word).parent.name}/{name}"
    if "multiprocessing" in " ".join(words) or "spawn_main" in " ".join(words):
        return "worker process"
    return Path(words[0]).name


def measure(exclude: set[int], window: float) -> dict[str, Any]:
    """CPU (% of one core), RSS and PSS (MB) of this process's tree over ``window`` seconds,
    in all and per kind of process (``by_kind``)."""
    pids = _tree(os.getpid(), exclude)
    before = {p: _cpu_s(p) for p in pids}
    started = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - started
    pids = _tree(os.getpid(), exclude)
    # A process that appeared meanwhile counts from 0; one that ended is lost (rare).
    kinds: dict[str, dict[str, float]] = {}
    for pid in pids:
        row = kinds.setdefault(_kind(pid), {"n": 0, "cpu_pct": 0.0, "rss_mb": 0.0, "pss_mb": 0.0})
        row["n"] += 1
        row["cpu_pct"] += 100.0 * (_cpu_s(pid) - before.get(pid, 0.0)) / elapsed
        row["rss_mb"] += _rss_mb(pid)
        row["pss_mb"] += _pss_mb(pid)
    by_kind = {k: {f: round(v, 1) for f, v in row.items()}
               for k, row in sorted(kinds.items(), key=lambda kv: -kv[1]["pss_mb"])}  # fmt: skip
    return {"cpu_pct": round(sum(r["cpu_pct"] for r in kinds.values()), 1),
            "rss_mb": round(sum(r["rss_mb"] for r in kinds.values()), 1),
            "pss_mb": round(sum(r["pss_mb"] for r in kinds.values()), 1),
            "processes": len(pids), "by_kind": by_kind}  # fmt: skip


def _wait(what: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise SystemExit(f"{message} within {timeout} s")
        time.sleep(0.25)


def run_processes(args: argparse.Namespace, pg: PgServer, mounts: list[Mount], root: Path,
                  exclude: set[int]) -> dict[str, float]:  # fmt: skip
    url = new_pg_database(pg)
    config = cluster_config(root / "proc", url, "auto", {m.path: m.url for m in mounts})
    config = config.model_copy(update={"server": config.server.model_copy(
        update={"backend": "processes", "worker_processes": args.processes})})  # fmt: skip
    db = Database(url)
    supervisor = Supervisor(config, db=db, backoff=fast_backoff, stall_timeout=5.0)
    supervisor.start()
    try:
        _wait(lambda: all(s.online for s in supervisor.cameras()), 180, "cameras not online")
        time.sleep(args.warmup)
        return measure(exclude, args.window)
    finally:
        supervisor.stop()
        db.close()


def run_ray(args: argparse.Namespace, pg: PgServer, mounts: list[Mount], root: Path,
            exclude: set[int]) -> tuple[dict[str, float], list[float]]:  # fmt: skip
    import ray

    url = new_pg_database(pg)
    system = FAST_FAILURE_DETECTION | (LEAN_SYSTEM_CONFIG if args.lean else {})
    with local_cluster(root / "nodes", workers=args.nodes, slots=args.slots,
                       system_config=system,
                       head_params=LEAN_HEAD_PARAMS if args.lean else None) as cluster:  # fmt: skip
        ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
        # No rebalancing: a move onto the node each kill adds would fall into the next
        # kill's failover time or the usage window (its cost is test_rebalance's).
        config = cluster_config(root / "ray", url, cluster.address,
                                {m.path: m.url for m in mounts},
                                cameras_per_actor=args.cameras_per_actor,
                                rebalance=False)  # fmt: skip
        db = Database(url)
        supervisor = Supervisor(config, db=db, backoff=fast_backoff, stall_timeout=5.0,
                                cluster_backend=RayBackend)  # fmt: skip
        supervisor.start()
        try:
            _wait(lambda: all(s.online for s in supervisor.cameras()), 240, "cameras not online")
            time.sleep(args.warmup)
            usage = measure(exclude, args.window)
            times = [kill_one(cluster, supervisor, root, index, args.slots)
                     for index in range(args.kills)]  # fmt: skip
            return usage, times
        finally:
            supervisor.stop()
            db.close()
            ray.shutdown()


def kill_one(cluster: Any, supervisor: Supervisor, root: Path, index: int, slots: int) -> float:
    """Kill the node with the most cameras; seconds until they are online elsewhere. A new
    node joins afterwards, so the next kill has free slots to fail over to."""
    placed = {s.name: s.node for s in supervisor.cameras()}
    victim = Counter(placed.values()).most_common(1)[0][0]
    moved = [c for c, n in placed.items() if n == victim]
    started = time.monotonic()
    cluster.remove(victim)

    def back() -> bool:
        now = {s.name: s for s in supervisor.cameras()}
        return all(now[c].online and now[c].node not in (None, victim) for c in moved)

    _wait(back, 180, f"cameras of {victim} not back")
    seconds = time.monotonic() - started
    print(f"kill {index + 1}: {victim} ({len(moved)} cameras) back in {seconds:.1f} s",
          flush=True)  # fmt: skip
    cluster.add(f"node-j{index + 1}", root / "nodes" / f"node-j{index + 1}", slots=slots)
    cluster.cluster.wait_for_nodes()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--slots", type=int, default=2, help="camera slots per Ray node")
    parser.add_argument(
        "--cameras-per-actor",
        type=int,
        default=4,
        help="cluster.cameras_per_actor (1: an actor process per camera)",
    )
    parser.add_argument(
        "--lean",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the head's lean Ray settings (vigil.cluster.lean)",
    )
    args = parser.parse_args()
    if args.kills and args.nodes * args.slots < args.cameras + args.slots:
        raise SystemExit("failover needs a spare node: --nodes * --slots >= --cameras + --slots")
    if args.nodes * args.slots < args.cameras:
        raise SystemExit("not enough camera slots: --nodes * --slots >= --cameras")
    logging.basicConfig(level=logging.WARNING)
    pg = start_server()
    pg.admin_sql(f"CREATE DATABASE {_TEMPLATE}")
    template = Database(pg.url(_TEMPLATE))
    template.migrate()
    template.close()
    relay, mounts = start_relay(shared_data_dir() / "clips", args.cameras, (CLIP,))
    exclude = {relay.server.pid, *(m.publisher.pid for m in mounts if m.publisher)}
    root = Path(tempfile.mkdtemp(prefix="vigil-bench-cluster-"))
    try:
        procs = run_processes(args, pg, mounts, root, exclude)
        ray_usage, kills = run_ray(args, pg, mounts, root, exclude)
    finally:
        for mount in mounts:
            mount.unpublish()
        relay.stop()
        pg.stop()
    result = {
        "cameras": args.cameras, "nodes": args.nodes, "slots": args.slots,
        "cameras_per_actor": args.cameras_per_actor, "lean": args.lean,
        "load": os.getloadavg(), "processes": procs, "ray": ray_usage,
        "cpu_ratio": round(ray_usage["cpu_pct"] / max(procs["cpu_pct"], 0.1), 2),
        "rss_ratio": round(ray_usage["rss_mb"] / max(procs["rss_mb"], 0.1), 2),
        "pss_ratio": round(ray_usage["pss_mb"] / max(procs["pss_mb"], 0.1), 2),
        "failover_s": [round(k, 1) for k in kills],
        "failover_p50_s": round(statistics.median(kills), 1) if kills else None,
        "failover_max_s": round(max(kills), 1) if kills else None,
    }  # fmt: skip
    print(f"{'backend':<10} {'CPU %':>7} {'RSS MB':>8} {'PSS MB':>8} {'procs':>6}")
    for name in ("processes", "ray"):
        row = result[name]
        print(f"{name:<10} {row['cpu_pct']:>7.1f} {row['rss_mb']:>8.1f} {row['pss_mb']:>8.1f} "
              f"{row['processes']:>6}")  # fmt: skip
        for kind, k in row["by_kind"].items():
            print(f"  {kind:<34} x{k['n']:<3.0f} {k['cpu_pct']:>6.1f} {k['rss_mb']:>8.1f} "
                  f"{k['pss_mb']:>8.1f}")  # fmt: skip
    print(f"ray / processes: CPU {result['cpu_ratio']}x, RSS {result['rss_ratio']}x, "
          f"PSS {result['pss_ratio']}x; load average {result['load']}")  # fmt: skip
    print(f"failover over {len(kills)} node kills: p50 {result['failover_p50_s']} s, "
          f"max {result['failover_max_s']} s")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
