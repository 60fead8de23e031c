"""The 80 COCO class names in the output order of the official YOLOX models.

Spelling follows the COCO annotations (and YOLOX's own ``COCO_CLASSES``): ``motorcycle``,
``airplane``, ``couch``, ``tv`` … The Darknet spellings of the same classes (``motorbike``,
``aeroplane``, ``sofa``, ``tvmonitor`` …, as in many ``coco.names`` files) are accepted as
aliases wherever a user names a class, so a config written for either convention works.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from vigil.errors import ConfigError

#: Index ``i`` is the class the model's ``5 + i``-th output column scores.
COCO: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

#: Darknet/VOC-style spellings → the COCO spelling used in :data:`COCO`.
ALIASES: dict[str, str] = {
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "tvmonitor": "tv",
}


def canonical_label(name: str) -> str:
    """``name`` lower-cased, trimmed and with a Darknet alias mapped to its COCO spelling."""
    key = " ".join(name.strip().lower().split())
    return ALIASES.get(key, key)


def class_ids(labels: Iterable[str], class_names: Sequence[str] = COCO) -> list[int]:
    """Indices of ``labels`` in ``class_names`` (aliases allowed), in the order given.

    Raises ``ConfigError`` naming every unknown label and listing the valid ones, since a typo
    in a config would otherwise silently detect nothing.
    """
    index = {canonical_label(n): i for i, n in enumerate(class_names)}
    wanted = list(labels)
    unknown = [label for label in wanted if canonical_label(label) not in index]
    if unknown:
        raise ConfigError(
            f"unknown detection label(s) {unknown}; use names the model knows: "
            f"{', '.join(class_names)}"
        )
    ids: list[int] = []
    for label in wanted:
        i = index[canonical_label(label)]
        if i not in ids:
            ids.append(i)
    return ids
