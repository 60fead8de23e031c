"""One batched detector actor per node and model, and what a camera on that node calls it
through.

::

    node N: camera actor ─┐                     DetectorActor "vigil-detector:<key>:<node id>"
            camera actor ─┼─ ray.put(images) ──►  BatchingDetector (max batch, max wait)
            camera actor ─┘   (N's object store)     └─ the shared model, one call per batch

Cameras are grouped by their model settings (``DetectConfig.model_settings``), as on a
single host: each group's cameras carry the same ``DetectorSpec`` and so find the same
actor on their node; a node running cameras of two models runs two detector actors.
``DetectorActor`` wraps the ``BatchingDetector`` of the single-host runtime around the
group's model as the ``Supervisor`` would build it (``cluster_detect_configs``: the union of
the group's labels, its lowest confidence). It is pinned to its node
(``NodeAffinitySchedulingStrategy``, not soft), named after the Ray node id and the spec's
``key`` (the model and batching settings: the cameras of one model find theirs, and a
detector left by a head that died is reused only for the same model and batching) and
*detached*: it is created by the first camera actor that needs it on the node
(``get_if_exists``), and must outlive that camera, which may move.
It is a threaded actor, so the calls of all the node's cameras wait in it at once and batch
together. The images go through the node's object store (``ray.put`` on the same node:
shared memory, never the network); only the small ``Detections`` come back.

``NodeDetector`` is the ``Detector`` a camera actor's pipeline uses: one call per request,
a bounded wait (``call_timeout``), and a clear ``ModelError`` when the node's detector is
gone; the next call gets or creates it again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vigil.cluster import actor_key, current_namespace, detector_actor_name, node_name
from vigil.config.models import DetectConfig
from vigil.errors import ModelError
from vigil.runtime.batcher import BatchingDetector
from vigil.types import Detections, ImageArray

log = logging.getLogger(__name__)

#: Calls a detector actor serves at once: every camera of a node waits in it together.
DETECTOR_CONCURRENCY = 256


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """What every camera actor of one model group passes to its node's detector (all the
    same within the group, so whichever camera creates it, it is the same detector)."""

    detect: DetectConfig
    max_batch: int
    max_wait_ms: float
    num_gpus: float = 0.0
    call_timeout: float = 5.0

    @property
    def key(self) -> str:
        """What a node's detector must have been made with to be reused (``actor_key``)."""
        return actor_key("detector", self.detect.model_dump_json(), repr(self.max_batch),
                         repr(self.max_wait_ms), repr(self.num_gpus))  # fmt: skip


class DetectorActor:
    """The node's shared model behind a ``BatchingDetector`` (a Ray actor; see the module
    docstring)."""

    def __init__(self, spec: DetectorSpec, node_id: str) -> None:
        from vigil.detect import build_detector

        self.node = node_name()
        self.node_id = node_id
        self.spec = spec
        self.batcher = BatchingDetector(build_detector(spec.detect), spec.max_batch,
                                        spec.max_wait_ms / 1000.0)  # fmt: skip

    def info(self) -> tuple[list[str], tuple[int, int]]:
        """The model's class names and input size (what a camera's pipeline needs)."""
        size = self.batcher.input_size
        return list(self.batcher.class_names), (int(size[0]), int(size[1]))

    def detect(self, images: Sequence[ImageArray]) -> list[Detections]:
        return self.batcher.detect_batch(images)

    def stats(self) -> dict[str, Any]:
        """Load and batching since the actor started (``vigil cluster status`` reads these
        keys): the node's name and Ray id, images and batches inferred, mean images per
        batch, requests waiting now, mean inference ms, the batching settings, and the
        model (path or name, input size) with its key."""
        s = self.batcher.stats
        return {
            "node": self.node, "node_id": self.node_id, "images": s.images,
            "batches": s.batches, "requests": s.requests, "mean_batch": round(s.mean_batch, 3),
            "queue": s.queue_depth, "inference_ms": round(s.inference_ms, 2),
            "max_batch": self.batcher.max_batch, "max_wait_ms": self.spec.max_wait_ms,
            "key": self.spec.key, "model": self.spec.detect.model,
            "input_size": [int(v) for v in self.batcher.input_size],
        }  # fmt: skip

    def close(self) -> None:
        self.batcher.close()


def node_detector_actor(spec: DetectorSpec) -> Any:
    """This node's detector actor for ``spec``'s model: the running one, or a new one
    pinned here (call it from a Ray worker on the node, e.g. a camera actor)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node_id = ray.get_runtime_context().get_node_id()
    actor_class: Any = ray.remote(DetectorActor)
    return actor_class.options(
        name=detector_actor_name(node_id, spec.key), namespace=current_namespace(),
        get_if_exists=True, lifetime="detached", max_concurrency=DETECTOR_CONCURRENCY, num_cpus=0,
        num_gpus=spec.num_gpus, max_restarts=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(spec, node_id)  # fmt: skip


class NodeDetector:
    """The node's detector actor as a ``Detector`` (see the module docstring).

    ``class_names`` and ``input_size`` are asked once, at construction, which waits for the
    model to load (``load_timeout``).
    """

    def __init__(self, spec: DetectorSpec, *, load_timeout: float = 300.0) -> None:
        self.spec = spec
        self._actor: Any = None
        names, size = self._ask(lambda actor: actor.info.remote(), load_timeout)
        self.class_names: Sequence[str] = names
        self.input_size: tuple[int, int] = size

    def detect_batch(self, images: Sequence[ImageArray]) -> list[Detections]:
        if not images:
            return []
        import ray

        ref = ray.put(list(images))  # this node's object store: the actor reads it in place
        result: list[Detections] = self._ask(lambda actor: actor.detect.remote(ref),
                                             self.spec.call_timeout)  # fmt: skip
        return result

    def _ask(self, call: Any, timeout: float) -> Any:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        if self._actor is None:
            self._actor = node_detector_actor(self.spec)
        try:
            return ray.get(call(self._actor), timeout=timeout)
        except GetTimeoutError:
            raise ModelError(
                f"the detector of node {node_name()} did not answer within {timeout:g} s "
                "(overloaded? raise cluster.call_timeout or add detector capacity)"
            ) from None
        except RayActorError as exc:
            # Gone (killed, or its process died): the next call creates it again.
            self._actor = None
            raise ModelError(
                f"the detector of node {node_name()} is gone ({type(exc).__name__}); it is "
                "re-created at the next frame"
            ) from None
