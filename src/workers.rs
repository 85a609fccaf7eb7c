//! Session threads: each runs a single-threaded tokio runtime, and every accepted client
//! connection is served, start to end, on one of them (round robin).
//!
//! Why not the shared work-stealing runtime: a session is two tasks (client → upstream and
//! upstream → client) that wake each other for every statement. On a work-stealing runtime
//! those wakeups often cross threads, and idle workers are woken to steal, so each statement
//! paid futex calls and context switches that cost more than inspecting it. Pinning a
//! session to one thread keeps its wakeups local; the threads only sleep in `epoll_wait`.
//! The price is that one session's CPU-heavy statement delays the others on its thread,
//! which classification (microseconds per statement) keeps small.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The stack of each session thread.
///
/// Classification recurses over a statement's syntax tree. The classifier refuses to parse
/// text whose nesting bound could approach the 2 MiB that threads get by default (see
/// `sql::depth`), and a stack overflow aborts the whole process rather than one session; 8 MiB,
/// the usual main-thread stack, keeps a wide margin behind that check should some construct
/// nest in a way the bound does not foresee. Only the pages a thread touches are committed.
const THREAD_STACK_BYTES: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WorkersError {
    #[error("cannot start session thread {index}: {source}")]
    Spawn {
        index: usize,
        source: std::io::Error,
    },
    #[error("session thread {index} stopped while starting")]
    Lost { index: usize },
}

/// The running session threads. Dropping it stops them; sessions still running on them are
/// dropped (their connections closed).
pub struct SessionWorkers {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    next: AtomicUsize,
}

impl SessionWorkers {
    /// Starts `threads` session threads; 0 means one per available CPU.
    pub fn start(threads: usize) -> Result<SessionWorkers, WorkersError> {
        let n = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut workers = SessionWorkers {
            handles: Vec::with_capacity(n),
            stops: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
            next: AtomicUsize::new(0),
        };
        for index in 0..n {
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("airlock-session-{index}"))
                .stack_size(THREAD_STACK_BYTES)
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = handle_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = handle_tx.send(Ok(rt.handle().clone()));
                    rt.block_on(async {
                        let _ = stop_rx.await;
                    });
                })
                .map_err(|source| WorkersError::Spawn { index, source })?;
            let handle = handle_rx
                .recv()
                .map_err(|_| WorkersError::Lost { index })?
                .map_err(|source| WorkersError::Spawn { index, source })?;
            workers.handles.push(handle);
            workers.stops.push(stop_tx);
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// How many session threads run.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The runtime the next session goes to.
    pub fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }
}

impl Drop for SessionWorkers {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        // Not joined: dropping may happen inside an async context, and a thread ends as soon
        // as its runtime has dropped the tasks it still held.
        self.threads.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_spread_round_robin_over_distinct_threads() {
        let workers = SessionWorkers::start(3).unwrap();
        assert_eq!(workers.len(), 3);
        let mut names = Vec::new();
        for _ in 0..6 {
            let (tx, rx) = std::sync::mpsc::channel();
            workers.next().spawn(async move {
                let _ = tx.send(std::thread::current().name().map(str::to_string));
            });
            names.push(rx.recv().unwrap().unwrap());
        }
        assert_eq!(
            names,
            [
                "airlock-session-0",
                "airlock-session-1",
                "airlock-session-2",
                "airlock-session-0",
                "airlock-session-1",
                "airlock-session-2"
            ]
        );
    }

    #[test]
    fn zero_means_one_thread_per_cpu() {
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(SessionWorkers::start(0).unwrap().len(), cpus);
    }

    #[test]
    fn dropping_stops_the_threads_and_their_tasks() {
        let workers = SessionWorkers::start(1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        workers.next().spawn(async move {
            let _keep = tx;
            std::future::pending::<()>().await;
        });
        drop(workers);
        // The task is dropped with its runtime, which drops the sender.
        assert!(rx.recv().is_err());
    }
}
