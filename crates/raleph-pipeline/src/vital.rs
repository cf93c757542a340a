//! The pipeline's threads are vital: if one dies (a panic: a bug), the node must stop rather
//! than go on half alive, serving reads while every submission waits on a thread that is gone.
//! Each thread holds a [`Vital`] for its whole life; a panic drops it while unwinding, which
//! reports the death to [`crate::PipelineHandle::failed`], which the node waits on to exit.

use std::sync::Arc;

use tokio::sync::watch;

/// Where deaths are reported: the first one is kept.
pub(crate) type Deaths = Arc<watch::Sender<Option<String>>>;

pub(crate) fn deaths() -> (Deaths, watch::Receiver<Option<String>>) {
    let (sender, receiver) = watch::channel(None);
    (Arc::new(sender), receiver)
}

/// Held by a vital thread; reports the thread's death if dropped by a panic.
pub(crate) struct Vital {
    thread: &'static str,
    deaths: Deaths,
}

impl Vital {
    pub(crate) fn new(thread: &'static str, deaths: &Deaths) -> Vital {
        Vital {
            thread,
            deaths: deaths.clone(),
        }
    }
}

impl Drop for Vital {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let death = format!("the pipeline's {} thread panicked", self.thread);
            // The first death is the cause; later ones are its consequences.
            self.deaths.send_if_modified(|first| {
                if first.is_some() {
                    return false;
                }
                *first = Some(death);
                true
            });
        }
    }
}
