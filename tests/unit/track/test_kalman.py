"""Kalman filter: time-aware prediction, update, and consistency under split gaps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vigil.track.kalman import KalmanBoxFilter, cxcywh_to_xyxy, xyxy_to_cxcywh


def test_box_conversions_round_trip() -> None:
    xyxy = np.array([[10.0, 20.0, 50.0, 100.0]])
    assert np.allclose(xyxy_to_cxcywh(xyxy), [[30.0, 60.0, 40.0, 80.0]])
    assert np.allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(xyxy)), xyxy)


@pytest.mark.parametrize("dt", [0.04, 0.2, 1.0])
def test_predict_moves_by_velocity_times_dt(dt: float) -> None:
    kf = KalmanBoxFilter()
    mean, cov = kf.initiate([[0.0, 0.0, 10.0, 20.0]])
    mean[0, 4:6] = [100.0, -50.0]  # px/s
    new_mean, new_cov = kf.predict(mean, cov, dt)
    assert np.allclose(new_mean[0, :2], [5.0 + 100.0 * dt, 10.0 - 50.0 * dt])
    assert np.allclose(new_mean[0, 2:4], [10.0, 20.0])
    assert np.all(np.diag(new_cov[0]) > np.diag(cov[0]) - 1e-12)  # uncertainty grows
    assert np.allclose(mean[0, :2], [5.0, 10.0])  # input untouched


def test_one_long_prediction_equals_many_short_ones() -> None:
    """Continuous-time noise: skipping frames must not change where the filter stands."""
    kf = KalmanBoxFilter()
    mean, cov = kf.initiate([[0.0, 0.0, 10.0, 20.0]])
    mean[0, 4:6] = [30.0, 5.0]
    one_mean, one_cov = kf.predict(mean, cov, 0.2)
    m, c = mean, cov
    for _ in range(5):
        m, c = kf.predict(m, c, 0.04)
    assert np.allclose(one_mean, m)
    assert np.allclose(one_cov, c, rtol=1e-6)


def test_update_learns_constant_velocity() -> None:
    kf = KalmanBoxFilter()
    box = np.array([[100.0, 100.0, 140.0, 200.0]])
    mean, cov = kf.initiate(box)
    velocity = np.array([50.0, 0.0, 50.0, 0.0])  # px/s to the right
    for step in range(1, 30):
        mean, cov = kf.predict(mean, cov, 0.1)
        mean, cov = kf.update(mean, cov, box + velocity * 0.1 * step)
    assert mean[0, 4] == pytest.approx(50.0, abs=2.0)
    assert mean[0, 5] == pytest.approx(0.0, abs=2.0)
    assert np.allclose(cov[0], cov[0].T)


def test_vectorised_rows_are_independent() -> None:
    kf = KalmanBoxFilter()
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 80.0, 110.0]])
    mean, cov = kf.initiate(boxes)
    m2, c2 = kf.update(*kf.predict(mean, cov, np.array([0.1, 0.5])), boxes + 2.0)
    single, _ = kf.update(*kf.predict(mean[1:], cov[1:], 0.5), boxes[1:] + 2.0)
    assert np.allclose(m2[1], single[0])
    assert c2.shape == (2, 8, 8)


def test_shrinking_box_never_inverts() -> None:
    kf = KalmanBoxFilter()
    mean, cov = kf.initiate([[0.0, 0.0, 10.0, 10.0]])
    mean[0, 6:8] = -100.0
    mean, _ = kf.predict(mean, cov, 5.0)
    xyxy = kf.to_xyxy(mean)
    assert np.all(xyxy[:, 2:] > xyxy[:, :2])


def test_coasting_decays_velocity_and_composes_over_split_gaps() -> None:
    kf = KalmanBoxFilter()
    mean, cov = kf.initiate(np.array([[0.0, 0.0, 10.0, 20.0]]))
    mean[0, 4] = 100.0  # 100 px/s to the right
    one_mean, _ = kf.predict(mean, cov, 0.6, coast_seconds=0.5)
    # x moves v·tau·(1 - e^(-dt/tau)); the velocity decays by e^(-dt/tau).
    assert one_mean[0, 0] == pytest.approx(5.0 + 100.0 * 0.5 * (1 - math.exp(-1.2)))
    assert one_mean[0, 4] == pytest.approx(100.0 * math.exp(-1.2))
    m, c = mean, cov
    for _ in range(3):
        m, c = kf.predict(m, c, 0.2, coast_seconds=0.5)
    np.testing.assert_allclose(m, one_mean, rtol=1e-9, atol=1e-9)
    # Per track: an undamped row (inf) moves v·dt as before.
    both, _ = kf.predict(np.repeat(mean, 2, 0), np.repeat(cov, 2, 0), 0.6, np.array([0.5, np.inf]))
    assert both[1, 0] == pytest.approx(5.0 + 60.0)
    assert both[0, 0] == pytest.approx(one_mean[0, 0])
