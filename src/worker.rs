//! The background worker: a tokio runtime on its own thread that runs jobs on blocking threads
//! and streams their events back, so the GUI never blocks.
//!
//! Commands go in ([`Worker::run`] through a channel; [`Worker::cancel`] directly, so it takes
//! effect at once); [`WorkerEvent`]s come out through a
//! channel the GUI drains each frame, and a notify hook (the GUI passes `request_repaint`) fires
//! after every event so the window repaints only when something happened.
//!
//! # Event order
//!
//! For each job id: `Started`, then any number of `Stage`/`Progress`/`Log` (a `Stage` comes
//! before the `Progress` of that stage), then exactly one `Finished`, always last. A request
//! refused as busy gets only its `Finished` (with the busy error).
//!
//! One job at a time per programmer port: a second request for a port in use is refused with a
//! clear "busy" error instead of queueing behind a job that may take a minute.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::emulate::socket::SharedSocket;
use crate::error::Error;
use crate::job::runner::{JobOutcome, JobRequest, run};
use crate::job::{CancelToken, JobEvent, Level, Stage};

/// Identifies one job.
pub type JobId = u64;

/// Why a job did not succeed, in a form that can be cloned into the GUI.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JobFailure {
    /// The error message.
    pub message: String,
    /// What to try.
    pub hint: Option<String>,
    /// The CLI exit code this error maps to.
    pub exit_code: i32,
    /// The user cancelled.
    pub cancelled: bool,
    /// Another job held the programmer.
    pub busy: bool,
}

impl From<&Error> for JobFailure {
    fn from(e: &Error) -> Self {
        JobFailure {
            message: e.to_string(),
            hint: e.hint(),
            exit_code: e.exit_code(),
            cancelled: matches!(e, Error::Cancelled),
            busy: matches!(e, Error::Busy(_)),
        }
    }
}

/// What the worker reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum WorkerEvent {
    /// The job began.
    Started {
        /// Job id.
        id: JobId,
        /// What it does.
        name: &'static str,
    },
    /// A log line.
    Log {
        /// Job id.
        id: JobId,
        /// Severity.
        level: Level,
        /// Text.
        text: String,
    },
    /// A stage began.
    Stage {
        /// Job id.
        id: JobId,
        /// The stage.
        name: Stage,
    },
    /// Progress within a stage.
    Progress {
        /// Job id.
        id: JobId,
        /// The stage.
        stage: Stage,
        /// Done so far.
        done: u64,
        /// Total.
        total: u64,
    },
    /// The job ended. Always the last event of a job.
    Finished {
        /// Job id.
        id: JobId,
        /// The outcome.
        result: Result<JobOutcome, JobFailure>,
    },
}

impl WorkerEvent {
    /// The job this event belongs to.
    pub fn id(&self) -> JobId {
        match self {
            WorkerEvent::Started { id, .. }
            | WorkerEvent::Log { id, .. }
            | WorkerEvent::Stage { id, .. }
            | WorkerEvent::Progress { id, .. }
            | WorkerEvent::Finished { id, .. } => *id,
        }
    }
}

enum Command {
    Run {
        id: JobId,
        request: Box<JobRequest>,
        board: Option<SharedSocket>,
    },
}

type Notify = Arc<dyn Fn() + Send + Sync>;

/// Handle to the worker thread. Dropping it stops the runtime after running jobs end.
pub struct Worker {
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    events: mpsc::Receiver<WorkerEvent>,
    next_id: Mutex<JobId>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    events: mpsc::Sender<WorkerEvent>,
    notify: Notify,
    running: Mutex<HashMap<JobId, (String, CancelToken)>>,
}

impl Shared {
    fn send(&self, event: WorkerEvent) {
        // The receiver only goes away when the Worker is dropped; nothing to do then.
        let _ = self.events.send(event);
        (self.notify)();
    }
}

impl Worker {
    /// Starts the worker; `notify` is called after every event.
    pub fn spawn(notify: impl Fn() + Send + Sync + 'static) -> std::io::Result<Worker> {
        let (cmd_tx, mut cmd_rx) = tokio::sync::mpsc::unbounded_channel::<Command>();
        let (ev_tx, ev_rx) = mpsc::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("isp-worker")
            .enable_time()
            .build()?;
        let shared = Arc::new(Shared {
            events: ev_tx,
            notify: Arc::new(notify),
            running: Mutex::new(HashMap::new()),
        });
        let loop_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("isp-worker".into())
            .spawn(move || {
                let shared = loop_shared;
                runtime.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    while let Some(command) = cmd_rx.recv().await {
                        match command {
                            Command::Run { id, request, board } => {
                                if let Some(task) = start(&shared, id, *request, board) {
                                    tasks.spawn(task);
                                }
                            }
                        }
                    }
                    // The handle was dropped: let running jobs finish (they stop at the next
                    // page once cancelled) so no chip is left in programming mode.
                    for (_, token) in lock(&shared.running).values() {
                        token.cancel();
                    }
                    while tasks.join_next().await.is_some() {}
                });
            })?;
        Ok(Worker {
            commands: cmd_tx,
            shared,
            events: ev_rx,
            next_id: Mutex::new(1),
            thread: Some(thread),
        })
    }

    /// Queues a job; returns its id. `board` is the emulated board for port `emulated`.
    pub fn run(&self, request: JobRequest, board: Option<SharedSocket>) -> JobId {
        let id = {
            let mut next = lock(&self.next_id);
            let id = *next;
            *next += 1;
            id
        };
        // Sending fails only if the worker thread died; the job then never reports, which the
        // GUI shows as a job that cannot start. Avoid that silently: log to stderr.
        if self
            .commands
            .send(Command::Run {
                id,
                request: Box::new(request),
                board,
            })
            .is_err()
        {
            eprintln!("isp-toolbox: the worker thread is gone; job {id} was not started");
        }
        id
    }

    /// Asks a job (or every job, with `None`) to stop at the next page boundary. Takes effect
    /// at once: the job sees it at its next check.
    pub fn cancel(&self, id: Option<JobId>) {
        for (job, (_, token)) in lock(&self.shared.running).iter() {
            if id.is_none_or(|t| t == *job) {
                token.cancel();
            }
        }
    }

    /// The next event, if any (non-blocking; for the GUI's frame loop).
    pub fn try_recv(&self) -> Option<WorkerEvent> {
        self.events.try_recv().ok()
    }

    /// The next event, waiting up to `timeout` (for tests and the CLI).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<WorkerEvent> {
        self.events.recv_timeout(timeout).ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the command channel ends the runtime's loop.
        let (dead, _) = tokio::sync::mpsc::unbounded_channel();
        self.commands = dead;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers the job (or refuses it as busy) and returns the task that runs it.
fn start(
    shared: &Arc<Shared>,
    id: JobId,
    request: JobRequest,
    board: Option<SharedSocket>,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let port = request.programmer.port.clone();
    let cancel = CancelToken::new();
    {
        let mut running = lock(&shared.running);
        if let Some((_, _)) = running.values().find(|(p, _)| *p == port) {
            let err = Error::Busy(port);
            shared.send(WorkerEvent::Finished {
                id,
                result: Err(JobFailure::from(&err)),
            });
            return None;
        }
        running.insert(id, (port, cancel.clone()));
    }
    let shared = shared.clone();
    Some(async move {
        shared.send(WorkerEvent::Started {
            id,
            name: request.kind.name(),
        });
        let job_shared = shared.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut reporter = |event: JobEvent| {
                job_shared.send(match event {
                    JobEvent::Stage(name) => WorkerEvent::Stage { id, name },
                    JobEvent::Progress { stage, done, total } => WorkerEvent::Progress {
                        id,
                        stage,
                        done,
                        total,
                    },
                    JobEvent::Log(level, text) => WorkerEvent::Log { id, level, text },
                });
            };
            run(&request, &mut reporter, cancel, board).map_err(|e| JobFailure::from(&e))
        })
        .await
        .unwrap_or_else(|panic| {
            Err(JobFailure {
                message: format!("internal error: the job crashed ({panic})"),
                hint: Some("please report this with the log".into()),
                exit_code: 1,
                cancelled: false,
                busy: false,
            })
        });
        lock(&shared.running).remove(&id);
        shared.send(WorkerEvent::Finished { id, result });
    })
}
