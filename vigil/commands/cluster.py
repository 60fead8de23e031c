"""``vigil cluster status [--address A] [--json]``: what runs where on a Vigil Ray cluster.

Connects to the cluster as a Ray client (``--address``: ``auto``, the cluster this machine
belongs to, by default; or the head's ``HOST:PORT``), prints ``ClusterStatus``
(``vigil.cluster.status``) as tables or JSON, and disconnects. Needs the ``cluster`` extra.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

from vigil.errors import StorageError

#: Seconds to wait for the head's port before saying no cluster is reachable.
CONNECT_TIMEOUT_S = 5.0


def register(subparsers: Any) -> None:
    """Add ``cluster status`` to the ``vigil`` command line."""
    parser = subparsers.add_parser(
        "cluster", help="a Vigil Ray cluster: nodes, cameras, detector load, failovers, moves",
        description="Inspect the Ray cluster that runs `vigil serve` with server.backend: ray.",
    )  # fmt: skip
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="nodes (camera slots, CPUs, GPUs), cameras per "
                                "node, detector load and batch sizes, failovers")  # fmt: skip
    status.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS", "auto"),
        help="the head's HOST:PORT (GCS port, 6379 by default) or `auto`, the "
        "cluster this machine is part of (default: $RAY_ADDRESS or auto)",
    )
    status.add_argument(
        "--namespace",
        default="vigil",
        help="the deployment's Ray namespace, its cluster.namespace (default: vigil)",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    import ray  # the cluster extra; missing: the CLI names it

    from vigil.cluster.status import gather_status

    address = str(args.address)
    _check_reachable(address)
    try:
        ray.init(address=address, namespace=str(args.namespace), log_to_driver=False,
                 logging_level=logging.ERROR, configure_logging=False)  # fmt: skip
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise _unreachable(address, str(exc)) from exc
    try:
        status = gather_status()
    finally:
        ray.shutdown()
    if args.json:
        print(json.dumps({"cluster": dataclasses.asdict(status)}, indent=2))
    else:
        _print_tables(status)
    return 0


def _unreachable(address: str, why: str) -> StorageError:
    return StorageError(
        f"no Ray cluster reachable at {address!r} ({why}); start the head with "
        "`ray start --head` or pass the head's address: --address HOST:6379"
    )


def _check_reachable(address: str) -> None:
    """Fail fast on a HOST:PORT nobody listens on (Ray itself retries for about a minute)."""
    if address.startswith("ray://"):
        # Ray Client proxies the public API only; the status reads the GCS's actor table.
        raise StorageError(
            f"--address {address!r}: a Ray Client address cannot be used here; "
            "give the head's GCS address instead, e.g. --address HOST:6379"
        )
    if address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise StorageError(f"--address {address!r}: expected HOST:PORT (e.g. 10.0.0.5:6379) "
                           "or auto")  # fmt: skip
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise _unreachable(address, str(exc)) from exc


def _print_tables(status: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout)
    nodes = Table("node", "ray node id", "alive", "camera slots", "CPUs", "GPUs", title="Nodes")
    for n in status.nodes:
        nodes.add_row(n.name or "?", n.node_id[:12], "yes" if n.alive else "NO",
                      f"{n.camera_slots_used:g}/{n.camera_slots_total:g}", f"{n.cpus:g}",
                      f"{n.gpus:g}")  # fmt: skip
    console.print(nodes)
    cameras = Table("camera", "node", "state", "restarts", "moves", title="Cameras")
    for c in status.cameras:
        cameras.add_row(c.camera, c.node or "-", c.state, str(c.restarts), str(c.moves))
    console.print(cameras)
    load = Table("node", "model", "images", "batches", "mean batch", "queue", "max batch",
                 "max wait ms", title="Detectors")  # fmt: skip
    for d in status.detectors:
        if d.error is not None:
            load.add_row(d.node or d.node_id[:12], "-", "-", "-", "-", "-", "-", d.error)
            continue
        model = f"{Path(d.model).name} {d.input_size[0]}x{d.input_size[1]}" if d.model else "?"
        load.add_row(
            d.node or d.node_id[:12],
            model,
            str(d.images),
            str(d.batches),
            f"{d.mean_batch:.2f}",
            str(d.queue),
            str(d.max_batch),
            f"{d.max_wait_ms:g}",
        )
    console.print(load)
    if status.failovers:
        for f in status.failovers:
            console.print(f"failover: {f.camera} restarted {f.restarts}x, now on {f.node or '-'}")
    else:
        console.print("failovers: none")
    if status.rebalanced:
        for r in status.rebalanced:
            console.print(f"rebalanced: {r.camera} moved {r.moves}x, now on {r.node or '-'}")
    else:
        console.print("rebalanced: none")
