//! The wall clock, for the adapters: the engine never reads it (it is
//! handed the time with every input), so this is the one place that does.

/// Milliseconds since the Unix epoch; `None` if the clock is set before it.
pub fn since_epoch_ms() -> Option<u64> {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
}

/// Milliseconds since the Unix epoch, 0 for a clock set before it.
pub fn now_ms() -> u64 {
    since_epoch_ms().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_is_after_2020() {
        assert!(super::now_ms() > 1_577_836_800_000);
    }
}
