"""Constant-velocity Kalman filter on boxes, vectorised over tracks and aware of time gaps.

State per track (8,): ``(cx, cy, w, h, vcx, vcy, vw, vh)`` — box centre and size in frame
pixels, velocities in pixels per **second**. Measurements are ``xyxy`` boxes (frame pixels).

Why seconds, not frames: the tracker sees frames at irregular intervals (motion gating skips
quiet frames, detection runs at a sampled fps), so prediction uses the real gap ``dt``. Process
noise is the continuous white-noise model, integrated over ``dt``; predicting once over
``2·dt`` therefore equals predicting twice over ``dt``, which keeps the filter consistent
whatever the frame spacing. Noise scales with box size (a near, large person moves more pixels
than a far, small one), as in SORT/ByteTrack.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

#: Smallest box side the filter will predict (pixels); a shrinking-size velocity must not
#: produce empty or inverted boxes over a long gap.
MIN_SIDE = 1.0


def xyxy_to_cxcywh(xyxy: npt.ArrayLike) -> F64:
    """(n, 4) corner boxes → (n, 4) centre/size boxes."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    wh = b[:, 2:] - b[:, :2]
    return np.concatenate([b[:, :2] + wh / 2.0, wh], axis=1)


def cxcywh_to_xyxy(boxes: npt.ArrayLike) -> F64:
    """(n, 4) centre/size boxes → (n, 4) corner boxes."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    half = b[:, 2:] / 2.0
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


class KalmanBoxFilter:
    """Constant-velocity filter for ``n`` boxes at once; holds parameters, never track state.

    Noise parameters are fractions of the box side (x-like terms scale with width, y-like
    with height):

    * ``position_std``: measurement noise of a detection's centre and size.
    * ``position_noise``: position diffusion, per sqrt(second) (unmodelled jitter).
    * ``velocity_noise``: velocity diffusion, per second per sqrt(second) (accelerations).
    * ``initial_velocity_std``: prior velocity uncertainty of a new track, per second.
    """

    def __init__(
        self,
        position_std: float = 0.05,
        position_noise: float = 0.1,
        velocity_noise: float = 0.5,
        initial_velocity_std: float = 1.0,
    ) -> None:
        self.position_std = position_std
        self.position_noise = position_noise
        self.velocity_noise = velocity_noise
        self.initial_velocity_std = initial_velocity_std

    @staticmethod
    def _scale(sizes: F64) -> F64:
        """(n, 4) per-coordinate scale: (w, h, w, h) from (n, 2) ``(w, h)``."""
        return np.concatenate([sizes, sizes], axis=1)

    def initiate(self, xyxy: npt.ArrayLike) -> tuple[F64, F64]:
        """New states for (n, 4) boxes: zero velocity. Returns mean (n, 8), cov (n, 8, 8)."""
        z = xyxy_to_cxcywh(xyxy)
        n = z.shape[0]
        mean = np.concatenate([z, np.zeros((n, 4))], axis=1)
        s = self._scale(np.maximum(z[:, 2:], MIN_SIDE))
        std = np.concatenate([2.0 * self.position_std * s, self.initial_velocity_std * s], axis=1)
        cov = np.zeros((n, 8, 8))
        idx = np.arange(8)
        cov[:, idx, idx] = std**2
        return mean, cov

    def predict(
        self, mean: F64, cov: F64, dt: float | F64, coast_seconds: float | F64 = np.inf
    ) -> tuple[F64, F64]:
        """States advanced by ``dt`` seconds (scalar or (n,)); inputs are not modified.

        ``coast_seconds`` (scalar or (n,); ``inf`` = none) damps the velocity of tracks that are
        coasting unseen: it decays as ``exp(-t / coast_seconds)``, so over a long occlusion
        the box drifts at most ``v · coast_seconds`` instead of without bound. The damped
        transition composes exactly like the plain one (two predictions over ``dt`` equal one
        over ``2·dt``); its process noise is the undamped one, an upper bound.
        """
        n = mean.shape[0]
        dts = np.broadcast_to(np.asarray(dt, dtype=np.float64), (n,))
        tau = np.broadcast_to(np.asarray(coast_seconds, dtype=np.float64), (n,))
        damped = np.isfinite(tau) & (tau > 0)
        safe_tau = np.where(damped, tau, 1.0)
        decay = np.where(damped, np.exp(-dts / safe_tau), 1.0)
        # Position gain of the velocity over the step: dt undamped, tau·(1 - e^(-dt/tau)) damped.
        gain = np.where(damped, safe_tau * (1.0 - decay), dts)
        new_mean = mean.copy()
        new_mean[:, :4] += mean[:, 4:] * gain[:, None]
        new_mean[:, 4:] *= decay[:, None]
        new_mean[:, 2:4] = np.maximum(new_mean[:, 2:4], MIN_SIDE)
        # F = [[I, g·I], [0, e·I]] applied blockwise: F P F^T without building F.
        p_pp, p_pv = cov[:, :4, :4], cov[:, :4, 4:]
        p_vp, p_vv = cov[:, 4:, :4], cov[:, 4:, 4:]
        g = gain[:, None, None]
        e = decay[:, None, None]
        new_cov = np.empty_like(cov)
        new_cov[:, :4, :4] = p_pp + g * (p_pv + p_vp) + g * g * p_vv
        new_cov[:, :4, 4:] = e * (p_pv + g * p_vv)
        new_cov[:, 4:, :4] = e * (p_vp + g * p_vv)
        new_cov[:, 4:, 4:] = e * e * p_vv
        new_cov += self._process_noise(new_mean, dts)
        return new_mean, new_cov

    def _process_noise(self, mean: F64, dts: F64) -> F64:
        """Continuous white-noise Q integrated over each ``dt``: (n, 8, 8)."""
        s2 = self._scale(np.maximum(mean[:, 2:4], MIN_SIDE)) ** 2
        qp = (self.position_noise**2) * s2 * dts[:, None]
        qv = (self.velocity_noise**2) * s2
        d = dts[:, None]
        q = np.zeros((mean.shape[0], 8, 8))
        i = np.arange(4)
        q[:, i, i] = qp + qv * d**3 / 3.0
        q[:, i, i + 4] = qv * d**2 / 2.0
        q[:, i + 4, i] = qv * d**2 / 2.0
        q[:, i + 4, i + 4] = qv * d
        return q

    def project(self, mean: F64, cov: F64) -> tuple[F64, F64]:
        """Measurement-space mean (n, 4) cxcywh and innovation covariance S (n, 4, 4)."""
        s = self._scale(np.maximum(mean[:, 2:4], MIN_SIDE))
        r = (self.position_std * s) ** 2
        innov = cov[:, :4, :4].copy()
        i = np.arange(4)
        innov[:, i, i] += r
        return mean[:, :4].copy(), innov

    def update(self, mean: F64, cov: F64, xyxy: npt.ArrayLike) -> tuple[F64, F64]:
        """States corrected by (n, 4) measured boxes, row for row; inputs are not modified."""
        z = xyxy_to_cxcywh(xyxy)
        proj, innov = self.project(mean, cov)
        pht = cov[:, :, :4]  # P H^T, (n, 8, 4)
        # K = P H^T S^-1, solved rather than inverted: S is symmetric, so K^T = S^-1 (P H^T)^T.
        gain = np.linalg.solve(innov, pht.transpose(0, 2, 1)).transpose(0, 2, 1)
        new_mean = mean + np.einsum("nij,nj->ni", gain, z - proj)
        new_cov = cov - gain @ cov[:, :4, :]
        new_cov = (new_cov + new_cov.transpose(0, 2, 1)) / 2.0
        return new_mean, new_cov

    @staticmethod
    def to_xyxy(mean: F64) -> F64:
        """(n, 4) corner boxes of states (n, 8)."""
        return cxcywh_to_xyxy(mean[:, :4])
