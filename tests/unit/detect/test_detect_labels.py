"""COCO class names: order as the model emits them, aliases, unknown names."""

from __future__ import annotations

import pytest

from tests.conftest import require_file
from vigil.detect.labels import ALIASES, COCO, canonical_label, class_ids
from vigil.errors import ConfigError
from vigil.paths import shared_models_dir


def test_eighty_unique_names():
    assert len(COCO) == 80
    assert len(set(COCO)) == 80


def test_order_matches_the_shared_coco_names_file():
    names = require_file(shared_models_dir() / "coco.names").read_text().splitlines()
    names = [n for n in names if n.strip()]
    assert [canonical_label(n) for n in names] == list(COCO)


@pytest.mark.parametrize(
    ("labels", "ids"),
    [
        (["person"], [0]),
        (["car", "person"], [2, 0]),
        (["motorbike", "Motorcycle"], [3]),  # alias and case both map to one class
        (["TV Monitor".replace(" ", "")], [62]),
        (["  dining   table "], [60]),
        ([], []),
    ],
)
def test_class_ids(labels, ids):
    assert class_ids(labels) == ids


def test_aliases_point_at_real_classes():
    assert set(ALIASES.values()) <= set(COCO)


def test_unknown_label_names_itself_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"'persn'.*person, bicycle"):
        class_ids(["person", "persn"])
