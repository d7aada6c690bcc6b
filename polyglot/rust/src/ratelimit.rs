//! A per-client request budget counted in the Redis Cluster, with the Python apps' keys and
//! algorithm, so every implementation shares one budget: a fixed window aligned to the epoch,
//! window `n` covering `[n * w, (n + 1) * w)` seconds, one key per client and window
//! (`devstack:ratelimit:<client>:<n>`), incremented once per request, expiring a second after
//! the window.

pub const PREFIX: &str = "devstack:ratelimit:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub window_seconds: u64,
    pub remaining: u64,
    pub reset_seconds: u64,
}

/// The index of the window `now` falls in, and the whole seconds (>= 1) until it ends.
pub fn window_position(now: f64, window_seconds: u64) -> (i64, u64) {
    let w = window_seconds as f64;
    let index = (now / w).floor();
    let reset = ((index + 1.0) * w - now).ceil();
    (index as i64, (reset as u64).max(1))
}

pub fn key(client: &str, index: i64) -> String {
    format!("{PREFIX}{client}:{index}")
}

pub fn decide(count: i64, limit: u64, window_seconds: u64, reset: u64) -> Decision {
    let count = count.max(0) as u64;
    Decision {
        allowed: count <= limit,
        limit,
        window_seconds,
        remaining: limit.saturating_sub(count),
        reset_seconds: reset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_epoch() {
        assert_eq!(window_position(120.0, 60), (2, 60));
        assert_eq!(window_position(179.2, 60), (2, 1));
        assert_eq!(window_position(150.5, 60), (2, 30));
        assert_eq!(key("127.0.0.1", 2), "devstack:ratelimit:127.0.0.1:2");
    }

    #[test]
    fn the_limit_is_inclusive() {
        assert!(decide(100, 100, 60, 5).allowed);
        let over = decide(101, 100, 60, 5);
        assert!(!over.allowed);
        assert_eq!(over.remaining, 0);
        assert_eq!(decide(1, 100, 60, 5).remaining, 99);
    }
}
