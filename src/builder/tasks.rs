//! Tasks owned by the stage that spawns them.
//!
//! A plain `tokio::spawn` handle detaches its task when dropped: a layer
//! scan or a body producer would go on reading its layer to the end after
//! the conversion failed or was dropped (Ctrl-C, an error in another
//! stage). A [`Scoped`] task is aborted when its handle is dropped, so a
//! stage's tasks never outlive the future that owns them. Every handle has
//! exactly one owner: the stage future that awaits it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;

use crate::Error;

/// A spawned task that is aborted when this handle is dropped. Awaiting
/// it gives the task's output, or an error if the task panicked.
#[must_use = "dropping the handle aborts the task"]
pub(crate) struct Scoped<T>(JoinHandle<T>);

pub(crate) fn spawn<F>(future: F) -> Scoped<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[cfg(test)]
    let future = {
        let live = live::Guard::new();
        async move {
            let _live = live;
            future.await
        }
    };
    Scoped(tokio::spawn(future))
}

impl<T> Drop for Scoped<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for Scoped<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|joined| joined.map_err(|e| Error::Io(std::io::Error::other(e))))
    }
}

/// Counts the scoped tasks whose future still exists (running, waiting or
/// not yet dropped after an abort), per spawning thread: a test on a
/// current-thread runtime sees only its own tasks.
#[cfg(test)]
pub(crate) mod live {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    thread_local! {
        static LIVE: Arc<AtomicUsize> = Arc::default();
    }

    pub(crate) fn count() -> usize {
        LIVE.with(|live| live.load(Ordering::SeqCst))
    }

    pub(super) struct Guard(Arc<AtomicUsize>);

    impl Guard {
        pub(super) fn new() -> Guard {
            let live = LIVE.with(Arc::clone);
            live.fetch_add(1, Ordering::SeqCst);
            Guard(live)
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
