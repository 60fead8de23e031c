"""Cross-node media benchmark: a segment fetched through a node's media actor vs read locally.

Run from the repository root::

    python bench/cluster_media.py [--repeats 5] [--big-mib 64]

Starts a real local Ray cluster (``tests/ray_cluster.py``: a head and one worker node
``node-1`` with its own data dir), starts the media actors (``ensure_media_actors``) and puts two
files into node-1's ``recordings/``: the shared clip ``car-detection.mp4`` (a real H.264
recording, 2.8 MB for 30 s) and ``--big-mib`` MiB of random bytes (about a minute of a 1080p
camera at 8-9 Mbit/s). This process is the API node. For each file, in one run:

* ``local read``: the file read whole from disk by this process (what a single host's
  ``FileResponse`` reads), and the same with its SHA-256 (what a verified copy costs at least);
* ``first chunk``: a ``stat`` plus the first 4 MiB ``read`` call answered by node-1's actor;
* ``cold fetch``: ``ClusterMedia.path`` with an empty cache: every chunk through the actor,
  hashed, written and renamed into the cache; the API serves the first byte after this;
* ``cached``: ``ClusterMedia.path`` again (a cache hit: no Ray call at all).

Medians of ``--repeats`` runs; ``ratio`` is the cold fetch over the local read. Both nodes are
processes of this machine, so the "network" is the loopback: the figure is the overhead of
Ray's object transfer, hashing and the cache write, not of a real link (add size / link
bandwidth for that).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ray_cluster import local_cluster
from vigil.cluster import NAMESPACE
from vigil.cluster.media import CHUNK_BYTES, ClusterMedia, MediaCache, ensure_media_actors
from vigil.paths import shared_data_dir


def timed(fn: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def local_read(path: Path, digest: bool) -> None:
    with path.open("rb") as stream:
        h = hashlib.sha256() if digest else None
        while chunk := stream.read(1 << 20):
            if h is not None:
                h.update(chunk)


def measure(name: str, path: Path, *, rel: str, sha: str, media: ClusterMedia, actor: object,
            cache: Path, repeats: int) -> dict[str, float | str]:  # fmt: skip
    import ray

    size = path.stat().st_size
    local = timed(lambda: local_read(path, False), repeats)
    local_sha = timed(lambda: local_read(path, True), repeats)

    def first_chunk() -> None:
        ray.get(actor.stat.remote(rel, "recordings"))  # type: ignore[attr-defined]
        ray.get(actor.read.remote(rel, "recordings", 0, CHUNK_BYTES))  # type: ignore[attr-defined]

    first = timed(first_chunk, repeats)

    def cold() -> None:
        shutil.rmtree(cache, ignore_errors=True)
        media.path("node-1", rel, "recordings", sha)

    fetch = timed(cold, repeats)
    hit = timed(lambda: media.path("node-1", rel, "recordings", sha), repeats)
    mib = size / 2**20
    return {"file": name, "MiB": round(mib, 2), "local_read_ms": round(local * 1e3, 2),
            "local_read_sha256_ms": round(local_sha * 1e3, 2),
            "first_chunk_ms": round(first * 1e3, 2), "cold_fetch_ms": round(fetch * 1e3, 2),
            "cold_fetch_MiB_s": round(mib / fetch, 1), "cached_ms": round(hit * 1e3, 3),
            "ratio_cold_vs_local": round(fetch / local, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--big-mib", type=int, default=64)
    args = parser.parse_args()
    import ray

    root = Path(tempfile.mkdtemp(prefix="vigil-bench-media-"))
    try:
        with local_cluster(root, workers=1) as cluster:
            ray.init(address=cluster.address, namespace=NAMESPACE, log_to_driver=False)
            try:
                actors = ensure_media_actors(root / "unused")
                folder = root / "node-1" / "recordings" / "cam"
                folder.mkdir(parents=True)
                clip = folder / "clip.mp4"
                shutil.copyfile(shared_data_dir() / "clips" / "car-detection.mp4", clip)
                big = folder / "big.mp4"
                big.write_bytes(os.urandom(args.big_mib * 2**20))
                cache = root / "api-cache"
                media = ClusterMedia(root / "head", "head", MediaCache(cache, 4 * 2**30))
                rows = []
                files = (("car-detection.mp4", clip), (f"random {args.big_mib} MiB", big))
                for name, path in files:
                    rows.append(measure(
                        name, path, rel=path.relative_to(root / "node-1").as_posix(),
                        sha=hashlib.sha256(path.read_bytes()).hexdigest(), media=media,
                        actor=actors["node-1"], cache=cache, repeats=args.repeats))  # fmt: skip
            finally:
                ray.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"repeats": args.repeats, "chunk_MiB": CHUNK_BYTES / 2**20,
                      "cpus": os.cpu_count(), "results": rows}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
