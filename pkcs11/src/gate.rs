//! The gate between calls on a module's sessions and its re-initialization.
//!
//! Every signing call passes the gate; `reinitialize` closes it, waits for the calls in flight
//! to finish, re-initializes the module and opens it again. A call that never returns must not
//! freeze the module: p11-kit's RPC client, whose server died while several calls shared its
//! socket, leaves all but one of them waiting forever for a reply that cannot come (its reader
//! fails after taking another call's header and wakes nobody). So the wait has a limit; calls
//! still in flight after it are abandoned to their old generation, and nothing they do when (if
//! ever) they return is counted any more. A read-write lock cannot do this: a reader that never
//! leaves blocks the writer for good, and the readers queued behind the writer with it.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a re-initialization waits for the calls in flight before it goes ahead without
/// them. A healthy call takes milliseconds and one on a lost device fails at once; what is
/// still running after this is stuck.
pub(crate) const DRAIN_LIMIT: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct State {
    /// Calls in flight that entered during `epoch`.
    in_flight: usize,
    /// Set while a re-initialization waits or runs: new calls wait for it.
    closed: bool,
    /// Bumped when a re-initialization leaves calls behind: their guards no longer count.
    epoch: u64,
}

/// Calls in, re-initialization out.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    state: Mutex<State>,
    changed: Condvar,
}

/// One call through the gate; the re-initialization waits for it (up to [`DRAIN_LIMIT`]).
#[must_use = "the gate counts the call only while the guard lives"]
pub(crate) struct CallGuard<'a> {
    gate: &'a Gate,
    epoch: u64,
}

/// The gate held closed for a re-initialization; reopened on drop.
#[must_use = "the gate reopens when this is dropped"]
pub(crate) struct Closed<'a> {
    gate: &'a Gate,
    /// Calls still in flight when the wait ended: stuck, and left to their old generation.
    pub(crate) abandoned: usize,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Poisoning only means a holder panicked; the counters are updated in single steps.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits while a re-initialization runs, then counts the call in.
    pub(crate) fn enter(&self) -> CallGuard<'_> {
        let mut state = self.lock();
        while state.closed {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.in_flight += 1;
        CallGuard { gate: self, epoch: state.epoch }
    }

    /// Closes the gate (one re-initialization at a time) and waits up to `limit` for the calls
    /// in flight to leave. Those still inside then are abandoned.
    pub(crate) fn close(&self, limit: Duration) -> Closed<'_> {
        let mut state = self.lock();
        while state.closed {
            state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.closed = true;
        let deadline = Instant::now() + limit;
        while state.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self.changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        let abandoned = state.in_flight;
        if abandoned > 0 {
            state.in_flight = 0;
            state.epoch += 1;
        }
        Closed { gate: self, abandoned }
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.lock();
        if state.epoch == self.epoch {
            state.in_flight -= 1;
            if state.in_flight == 0 && state.closed {
                self.gate.changed.notify_all();
            }
        }
    }
}

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        self.gate.lock().closed = false;
        self.gate.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::sync::Arc;

    #[test]
    fn closing_waits_for_calls_in_flight() {
        let gate = Arc::new(Gate::default());
        let (entered, wait_entered) = mpsc::channel();
        let caller = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let _call = gate.enter();
                entered.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(100));
            })
        };
        wait_entered.recv().unwrap();
        let started = Instant::now();
        let closed = gate.close(Duration::from_secs(10));
        assert_eq!(closed.abandoned, 0, "the call left in time");
        assert!(
            started.elapsed() >= Duration::from_millis(50),
            "close returned while the call was in flight"
        );
        drop(closed);
        caller.join().unwrap();
    }

    /// The freeze this gate replaces: a call that never returns held a read lock, the
    /// re-initialization waited for the write lock, and every other call queued behind it.
    #[test]
    fn a_call_that_never_returns_is_abandoned_and_does_not_block_the_next_calls() {
        let gate = Arc::new(Gate::default());
        let stuck = gate.enter();
        let closed = gate.close(Duration::from_millis(50));
        assert_eq!(closed.abandoned, 1);
        // A call arriving during the re-initialization waits for it, then goes on.
        let (done, wait_done) = mpsc::channel();
        let next = {
            let gate = gate.clone();
            std::thread::spawn(move || {
                let _call = gate.enter();
                done.send(()).unwrap();
            })
        };
        assert!(wait_done.recv_timeout(Duration::from_millis(100)).is_err(), "entered a closed gate");
        drop(closed);
        wait_done.recv_timeout(Duration::from_secs(5)).expect("the gate reopened");
        next.join().unwrap();
        // The next re-initialization does not wait for the abandoned call, and the abandoned
        // call leaving late does not unbalance the count.
        let started = Instant::now();
        let again = gate.close(Duration::from_secs(10));
        assert_eq!(again.abandoned, 0);
        assert!(started.elapsed() < Duration::from_secs(5), "waited for an abandoned call");
        drop(again);
        let counted = gate.enter();
        drop(stuck);
        assert_eq!(gate.lock().in_flight, 1, "the late guard of an old epoch must not count");
        drop(counted);
        assert_eq!(gate.lock().in_flight, 0);
    }
}
