"""Exponential backoff with jitter: reconnecting cameras, restarting workers, retrying webhooks.

Pure: it computes delays and never sleeps, so it is tested without waiting. Jitter spreads the
reconnections of many cameras that dropped at once (a switch reboot) so they do not all hit the
network video recorder in the same instant (and the retries of many failed webhook deliveries,
so they do not hit the receiver in one burst).
"""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial * factor**n`` seconds for the n-th retry, capped at ``max``.

    Each delay is multiplied by a random factor in ``[1 - jitter, 1 + jitter]`` and then capped
    at ``max`` again, so ``max`` is a hard bound. ``reset()`` after a success starts over.
    """

    def __init__(
        self,
        initial: float = 0.5,
        factor: float = 2.0,
        max: float = 30.0,
        jitter: float = 0.1,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0 or factor < 1 or max < initial or not 0 <= jitter < 1:
            raise ValueError(
                "Backoff needs initial > 0, factor >= 1, max >= initial and 0 <= jitter < 1, "
                f"got initial={initial}, factor={factor}, max={max}, jitter={jitter}"
            )
        self.initial = initial
        self.factor = factor
        self.max = max
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.attempts = 0

    def base_delay(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (0-based) without jitter, in seconds."""
        # Cap the exponent so huge attempt counts do not overflow a float.
        exponent = min(attempt, 64)
        return float(min(self.max, self.initial * self.factor**exponent))

    def delay(self, attempt: int) -> float:
        """The jittered delay before retry number ``attempt`` (0-based); counts nothing.

        For callers that keep the attempt count themselves (one per webhook delivery).
        """
        delay = self.base_delay(attempt)
        if self.jitter:
            delay *= 1.0 + self._rng.uniform(-self.jitter, self.jitter)
        return float(min(self.max, delay))

    def next(self) -> float:
        """The delay before the next retry, in seconds; counts the attempt."""
        delay = self.delay(self.attempts)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """Start over after a success."""
        self.attempts = 0
