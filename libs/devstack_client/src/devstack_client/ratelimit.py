"""A per-client request budget counted in the Redis Cluster, so every instance shares it.

A fixed window aligned to the epoch: window `n` covers `[n * w, (n + 1) * w)` seconds, and each
client's count in it is one Redis key (`<prefix><client>:<n>`, expiring just after the window),
incremented once per request. Two instances of an application that use the same Redis therefore
share one budget, and a restart forgets nothing.

```python
limiter = RedisRateLimiter(stack.redis, limit=100, window_seconds=60)
decision = await limiter.hit("203.0.113.7")
if not decision.allowed:
    ...  # 429, Retry-After: decision.reset_seconds
```

`hit` raises the library's `DependencyUnavailable` / `DependencyTimeout` when Redis cannot be
reached; whether to let the request through then (fail open) is the caller's choice.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from devstack_client.errors import ConfigurationError
from devstack_client.pools import RedisPool

DEFAULT_PREFIX = "devstack:ratelimit:"


@dataclass(frozen=True)
class RateLimitDecision:
    """The outcome of one request against a client's budget."""

    allowed: bool
    limit: int  # requests per window
    window_seconds: int
    remaining: int  # requests left in this window after this one (0 when refused)
    reset_seconds: int  # whole seconds until the window resets, at least 1


class RateLimiter(Protocol):
    """What a web adapter needs: count one request of `client`, say whether it may proceed."""

    limit: int
    window_seconds: int

    async def hit(self, client: str) -> RateLimitDecision:
        """Count one request of `client`; the decision says whether it is allowed."""
        ...


HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
return count
"""


def window_position(now: float, window_seconds: int) -> tuple[int, int]:
    """The index of the window `now` falls in, and the whole seconds (>= 1) until it ends."""
    index = math.floor(now / window_seconds)
    reset = math.ceil((index + 1) * window_seconds - now)
    return index, max(1, reset)


def decide(count: int, limit: int, window_seconds: int, reset: int) -> RateLimitDecision:
    """The decision for the `count`-th request of a window."""
    return RateLimitDecision(
        allowed=count <= limit,
        limit=limit,
        window_seconds=window_seconds,
        remaining=max(0, limit - count),
        reset_seconds=reset,
    )


class RedisRateLimiter:
    """`limit` requests per `window_seconds` per client, counted in the Redis Cluster."""

    def __init__(
        self,
        pool: RedisPool,
        *,
        limit: int,
        window_seconds: int = 60,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit < 1:
            raise ConfigurationError("a rate limit is at least 1 request per window")
        if window_seconds < 1:
            raise ConfigurationError("a rate-limit window is at least 1 second")
        self._pool = pool
        self.limit = limit
        self.window_seconds = window_seconds
        self.prefix = prefix
        self._clock = clock

    def key(self, client: str, index: int) -> str:
        """The Redis key counting `client`'s requests in window `index`."""
        return f"{self.prefix}{client}:{index}"

    async def hit(self, client: str) -> RateLimitDecision:
        """Count one request of `client` in the current window (one Redis round trip)."""
        index, reset = window_position(self._clock(), self.window_seconds)
        key = self.key(client, index)
        async with self._pool.operation("rate limit") as cluster:
            # One script on the key's own node: one round trip, atomic, and no async cluster
            # pipeline (which fails under concurrency in redis-py). The expiry outlives the
            # window by a second so that a clock a little behind Redis's never resets it early.
            count = await cluster.eval(HIT_SCRIPT, 1, key, self.window_seconds + 1)
        return decide(int(count), self.limit, self.window_seconds, reset)
