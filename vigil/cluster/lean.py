"""Ray settings for lean Vigil nodes: what Ray runs by default that Vigil does not use.

Every Ray node runs a raylet, a dashboard agent and a runtime-env agent (Ray starts the two
agents on every node; no setting removes them), and the head a GCS, an API server
(``dashboard.py``, minimal without the dashboard), an autoscaler monitor and a log monitor.
``bench/cluster.py`` measures each of them (``docs/cluster.md``, "Cost of the Ray backend").
What Vigil can do without, set once on the head (``ray start --head --system-config``; the
worker nodes take the head's):

* Ray's own metrics (``enable_metrics_collection``): every worker process reports them to its
  node's dashboard agent; Vigil has its own (``/metrics`` on the head).
* per-call event statistics (``event_stats``): bookkeeping of every RPC handler, for Ray's
  debug dumps.
* prestarted idle workers (``enable_worker_prestart``, ``prestart_worker_first_driver``):
  Python processes started ahead for tasks; Vigil runs only actors, each started on demand.

and on the head's command line ``--no-monitor`` (the autoscaler's monitor: a Vigil cluster
has a fixed set of nodes) and ``--include-log-monitor=false`` (actor logs then stay in each
node's ``/tmp/ray/session_latest/logs`` instead of being copied to the head's output).
"""

from __future__ import annotations

from typing import Any

#: ``ray start --head --system-config`` (also ``ray.init(_system_config=…)`` for
#: ``cluster.address: local``).
LEAN_SYSTEM_CONFIG: dict[str, Any] = {
    "enable_metrics_collection": False,
    "event_stats": False,
    "enable_worker_prestart": False,
    "prestart_worker_first_driver": False,
}

#: The head's processes Vigil does without (``RayParams`` names; ``ray start`` flags above).
LEAN_HEAD_PARAMS: dict[str, Any] = {"no_monitor": True, "include_log_monitor": False}
