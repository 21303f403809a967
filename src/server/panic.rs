//! Catching a handler's panic at the connection boundary.
//!
//! A panic in a service is a bug, but one connection's bug must not cost
//! every other client their server. [`CatchPanic`] wraps each connection
//! task: a panic ends that future (its stream is dropped, so the socket
//! closes), and the accept loop logs it once, with the peer. The panic hook
//! installed by [`install_hook`] keeps the default hook quiet for panics
//! that are caught this way, so the log has one line per panic instead of
//! the default message plus ours; every other panic still reaches the
//! previous hook.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

thread_local! {
    /// Whether this thread is polling a [`CatchPanic`] future right now.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
    /// The message and location of the last panic caught on this thread,
    /// recorded by the hook (the payload alone has no location).
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs (once per process) a panic hook that records panics inside
/// [`CatchPanic`] for the connection's log line instead of printing them,
/// and hands every other panic to the hook that was there before.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if CATCHING.with(Cell::get) {
                let text = match info.location() {
                    Some(at) => format!(
                        "{} at {}:{}",
                        payload_text(info.payload()),
                        at.file(),
                        at.line()
                    ),
                    None => payload_text(info.payload()).to_owned(),
                };
                LAST_PANIC.with(|last| *last.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "panic with a non-text payload"
    }
}

pin_project_lite::pin_project! {
    /// A future that turns a panic while it is polled into
    /// `Err(description)`. Created by [`catch_panic`].
    #[derive(Debug)]
    pub(crate) struct CatchPanic<F> {
        #[pin]
        inner: F,
    }
}

/// Wraps `future` so that a panic while polling it resolves to `Err` with
/// the panic's message (and location, when the hook is installed).
pub(crate) fn catch_panic<F: Future>(future: F) -> CatchPanic<F> {
    CatchPanic { inner: future }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        let was_catching = CATCHING.with(|c| c.replace(true));
        // The inner future is not polled again after a panic: this future
        // is then Ready, and its owner drops it.
        let polled = panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
        CATCHING.with(|c| c.set(was_catching));
        match polled {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => {
                let text = LAST_PANIC
                    .with(|last| last.borrow_mut().take())
                    .unwrap_or_else(|| payload_text(&*payload).to_owned());
                Poll::Ready(Err(text))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error_with_its_message_and_location() {
        install_hook();
        let caught = catch_panic(async {
            tokio::task::yield_now().await;
            panic!("handler bug {}", 42);
        })
        .await;
        let text = caught.unwrap_err();
        assert!(text.starts_with("handler bug 42 at "), "{text}");
        assert!(text.contains("panic.rs:"), "{text}");
        assert_eq!(catch_panic(async { 7 }).await, Ok(7));
    }
}
