//! Panics as one log line, never a trace on stderr, and none at all where a
//! panic is expected and turned into an error (sled reading a damaged file).

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many [`quietly`] calls are running.
static QUIET: AtomicUsize = AtomicUsize::new(0);

/// Replaces the default panic hook: a panic is logged as one structured error
/// line with its message and location.
pub(crate) fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        if QUIET.load(Ordering::SeqCst) > 0 {
            return;
        }
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if tracing::dispatcher::has_been_set() {
            tracing::error!(%message, %location, "internal error (panic)");
        } else {
            eprintln!("veto: internal error: {message} ({location})");
        }
    }));
}

/// Runs `f` with panic reports silenced: for code whose panics are caught
/// and reported as errors of their own.
pub(crate) fn quietly<T>(f: impl FnOnce() -> T) -> T {
    struct Loud;
    impl Drop for Loud {
        fn drop(&mut self) {
            QUIET.fetch_sub(1, Ordering::SeqCst);
        }
    }
    QUIET.fetch_add(1, Ordering::SeqCst);
    let _loud = Loud;
    f()
}
