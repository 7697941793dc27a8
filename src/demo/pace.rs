//! The demo script's clock, which a trainer can pause and step.
//!
//! The script waits between its steps so that a room can follow it. A
//! trainer explaining a step needs it to hold still, and one who has
//! explained it needs the next step now: [`Pace`] is the control the
//! terminal UI holds (space pauses and resumes, n or F6 runs the next step
//! at once and stays paused; `docs/demo.md`), [`Pacer`] the script's side.

use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::watch;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct State {
    paused: bool,
    /// Bumped by "next step": the wait under way ends at once.
    steps: u64,
}

/// The trainer's side: pause, resume, step.
#[derive(Clone)]
pub struct Pace {
    state: watch::Sender<State>,
}

/// The script's side: waits that a paused [`Pace`] stretches.
pub struct Pacer {
    state: watch::Receiver<State>,
}

/// A control and the script clock it drives.
pub fn pace() -> (Pace, Pacer) {
    let (tx, rx) = watch::channel(State::default());
    (Pace { state: tx }, Pacer { state: rx })
}

impl Pace {
    /// Pause if running, resume if paused; returns whether it is paused now.
    pub fn toggle(&self) -> bool {
        let mut paused = false;
        self.state.send_modify(|s| {
            s.paused = !s.paused;
            paused = s.paused;
        });
        paused
    }

    /// End the wait under way, so the script's next step runs now; a paused
    /// script then waits again before the step after it.
    pub fn next_step(&self) {
        self.state.send_modify(|s| s.steps = s.steps.wrapping_add(1));
    }

    pub fn is_paused(&self) -> bool {
        self.state.borrow().paused
    }
}

impl Pacer {
    /// Wait `ms` of unpaused time, or until the trainer asks for the next
    /// step. Without a control (it was dropped) this is a plain sleep.
    pub async fn wait(&mut self, ms: u64) {
        let mut left = Duration::from_millis(ms);
        let steps_at_start = self.state.borrow_and_update().steps;
        loop {
            let now = *self.state.borrow_and_update();
            if now.steps != steps_at_start {
                return;
            }
            if now.paused {
                if self.state.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let started = Instant::now();
            tokio::select! {
                _ = tokio::time::sleep(left) => return,
                changed = self.state.changed() => {
                    left = left.saturating_sub(started.elapsed());
                    if changed.is_err() {
                        tokio::time::sleep(left).await;
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_unpaused_wait_takes_its_time() {
        let (_pace, mut pacer) = pace();
        let t0 = tokio::time::Instant::now();
        pacer.wait(2500).await;
        assert_eq!(t0.elapsed(), Duration::from_millis(2500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_paused_script_holds_until_resumed_and_keeps_what_was_left() {
        let (pace, mut pacer) = pace();
        let t0 = tokio::time::Instant::now();
        let control = pace.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1000)).await;
            assert!(control.toggle(), "paused");
            tokio::time::sleep(Duration::from_secs(60)).await;
            assert!(!control.toggle(), "resumed");
        });
        pacer.wait(2500).await;
        // 1 s before the pause, 60 s paused, then the 1.5 s that were left.
        assert_eq!(t0.elapsed(), Duration::from_millis(62_500));
        assert!(!pace.is_paused());
    }

    #[tokio::test(start_paused = true)]
    async fn next_step_ends_the_wait_and_the_following_one_stays_paused() {
        let (pace, mut pacer) = pace();
        pace.toggle();
        let control = pace.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            control.next_step();
        });
        let t0 = tokio::time::Instant::now();
        pacer.wait(2500).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(10), "the step ran when asked, not before");
        // Still paused: the next wait does not end by itself.
        let held = tokio::time::timeout(Duration::from_secs(30), pacer.wait(100)).await;
        assert!(held.is_err(), "a paused script ran its next step unasked");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_control_the_script_runs_on_its_timers() {
        let (pace, mut pacer) = pace();
        drop(pace);
        let t0 = tokio::time::Instant::now();
        pacer.wait(1500).await;
        assert_eq!(t0.elapsed(), Duration::from_millis(1500));
    }
}
