"""BatchingDetector: requests of many threads in one inference call, results to their callers."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from vigil.errors import ModelError
from vigil.runtime.batcher import BatchingDetector
from vigil.types import Detections, ImageArray


class TagDetector:
    """A fake model whose one detection per image carries the image's tag (pixel [0, 0, 0]).

    ``gate`` holds the first call until released, so tests can make requests pile up.
    """

    class_names = ("person",)
    input_size = (64, 64)

    def __init__(self, *, fail: bool = False, gate: threading.Event | None = None) -> None:
        self.calls: list[int] = []
        self.fail = fail
        self.gate = gate
        self.entered = threading.Event()

    def detect_batch(self, images: Sequence[ImageArray]) -> list[Detections]:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append(len(images))
        if self.fail:
            raise RuntimeError("inference exploded")
        return [
            Detections(
                xyxy=np.array([[0, 0, 1, 1]], np.float32),
                confidence=np.array([float(img[0, 0, 0]) / 255.0], np.float32),
                class_id=np.zeros(1, np.int64),
            )
            for img in images
        ]


def tagged(*tags: int) -> list[ImageArray]:
    return [np.full((8, 8, 3), t, np.uint8) for t in tags]


def tags_of(results: list[Detections]) -> list[int]:
    return [round(float(d.confidence[0]) * 255) for d in results]


def run_threads(batcher: BatchingDetector, requests: list[list[int]]) -> list[object]:
    out: list[object] = [None] * len(requests)

    def call(i: int) -> None:
        try:
            out[i] = tags_of(batcher.detect_batch(tagged(*requests[i])))
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return out


def test_two_threads_share_one_batch_and_get_their_own_results() -> None:
    model = TagDetector()
    batcher = BatchingDetector(model, max_batch=8, max_wait=0.5)
    try:
        out = run_threads(batcher, [[1, 2], [3]])
    finally:
        batcher.close()
    assert out == [[1, 2], [3]]
    assert model.calls == [3]
    stats = batcher.stats
    assert (stats.batches, stats.requests, stats.images) == (1, 2, 3)
    assert stats.mean_batch == 3.0


@pytest.mark.parametrize(
    ("max_batch", "requests", "calls"),
    [
        (1, [[1], [2], [3]], [1, 1, 1]),  # no batching at all
        (2, [[1], [2], [3]], [2, 1]),  # a full batch leaves at once
        (2, [[1, 2, 3], [4]], [3, 1]),  # a large request is never split, and runs alone
        (4, [[1, 2], [3, 4, 5]], [2, 3]),  # the next request does not fit: next batch
    ],
)
def test_batches_respect_max_batch(
    max_batch: int, requests: list[list[int]], calls: list[int]
) -> None:
    gate = threading.Event()
    model = TagDetector(gate=gate)
    batcher = BatchingDetector(model, max_batch=max_batch, max_wait=0.2)
    try:
        # A blocker occupies the inference thread while the real requests queue up in order.
        blocker = threading.Thread(target=batcher.detect_batch, args=(tagged(0),))
        blocker.start()
        assert model.entered.wait(5)
        results: list[object] = [None] * len(requests)
        threads = []
        for i, tags in enumerate(requests):

            def call(i: int = i, tags: list[int] = tags) -> None:
                results[i] = tags_of(batcher.detect_batch(tagged(*tags)))

            threads.append(threading.Thread(target=call))
            threads[-1].start()
            while batcher.stats.queue_depth < i + 1:
                time.sleep(0.005)
        gate.set()
        for t in [blocker, *threads]:
            t.join(10)
    finally:
        batcher.close()
    assert results == requests
    assert model.calls == [1, *calls]


def test_an_inference_error_reaches_every_caller_of_the_batch() -> None:
    batcher = BatchingDetector(TagDetector(fail=True), max_batch=8, max_wait=0.5)
    try:
        out = run_threads(batcher, [[1], [2]])
    finally:
        batcher.close()
    assert all(isinstance(o, RuntimeError) and "exploded" in str(o) for o in out), out


def test_close_wakes_waiting_callers_with_a_model_error() -> None:
    gate = threading.Event()
    batcher = BatchingDetector(TagDetector(gate=gate), max_batch=1, max_wait=0.0)
    out: list[object] = []

    def call() -> None:
        try:
            out.append(batcher.detect_batch(tagged(1)))
        except ModelError as exc:
            out.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    while batcher.stats.queue_depth < 2:  # one is being inferred, two wait
        time.sleep(0.005)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    gate.set()
    for t in [closer, *threads]:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert sum(isinstance(o, ModelError) for o in out) == 2
    with pytest.raises(ModelError, match="closed"):
        batcher.detect_batch(tagged(1))


def test_passes_detector_properties_and_empty_requests() -> None:
    batcher = BatchingDetector(TagDetector())
    try:
        assert batcher.class_names == ("person",)
        assert batcher.input_size == (64, 64)
        assert batcher.detect_batch([]) == []
    finally:
        batcher.close()


def test_providers_says_where_the_shared_model_runs(tmp_path):
    from tests.unit.detect.test_onnx_detector import _tiny_yolox
    from vigil.detect import OnnxDetector

    onnx_model = OnnxDetector(_tiny_yolox(tmp_path / "tiny.onnx"), device="cpu")
    batcher = BatchingDetector(onnx_model)
    fake = BatchingDetector(TagDetector())
    try:
        assert batcher.providers == ["CPUExecutionProvider"]
        assert fake.providers == []
    finally:
        batcher.close()
        fake.close()
