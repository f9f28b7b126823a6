//! Where log lines go: a bounded queue in front of one writer thread, so that the
//! thread that logs (an async worker of `fts serve`, most of all) never waits for the
//! log's reader.
//!
//! A stalled reader (a full pipe, a stuck journald or docker log driver, `| tee` on a
//! suspended terminal) used to block every worker in `write(2)`: no accept, no
//! timeout, no CRL reload, no graceful stop. Now a line that finds the queue full is
//! dropped and counted instead ([`lines_dropped`], shown as
//! `fts_log_lines_dropped_total` on `/metrics`), and once the queue has drained the
//! writer logs one line saying how many were lost. Dropping is the right loss: a log
//! line is never a security decision, and everything the server decides is also
//! counted in its metrics.
//!
//! At exit, [`LogGuard`] waits a bounded time ([`FLUSH_AT_EXIT`]) for the queue to be
//! written, so the lines of a normal exit are not lost and a stalled reader cannot
//! hold the process.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use tracing_subscriber::fmt::MakeWriter;

/// Lines the queue holds before new ones are dropped: at a few hundred bytes a line,
/// a couple of MiB, several seconds of the busiest server's log.
pub const QUEUE_LINES: usize = 8192;

/// The longest the process waits at exit for its queued lines to be written.
pub const FLUSH_AT_EXIT: Duration = Duration::from_secs(1);

/// Lines dropped since the process started (one count per process: there is one log).
static LINES_DROPPED: LazyLock<Arc<AtomicU64>> = LazyLock::new(Arc::default);

/// The count of lines dropped because the queue was full, for the metrics.
pub fn lines_dropped() -> Arc<AtomicU64> {
    Arc::clone(&LINES_DROPPED)
}

enum Message {
    Line(Vec<u8>),
    /// Answer on the channel once every line queued before this one is written.
    Flush(mpsc::Sender<()>),
}

/// The `MakeWriter` of the subscriber: each event's line is queued whole when its
/// writer is dropped, or dropped and counted when the queue is full.
#[derive(Clone)]
pub struct LogQueue {
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl<'a> MakeWriter<'a> for LogQueue {
    type Writer = QueuedLine<'a>;

    fn make_writer(&'a self) -> QueuedLine<'a> {
        QueuedLine { queue: self, line: Vec::new() }
    }
}

/// One event's bytes, sent to the queue in one piece when dropped (the formatter may
/// write an event in several calls; lines must not interleave).
pub struct QueuedLine<'a> {
    queue: &'a LogQueue,
    line: Vec<u8>,
}

impl Write for QueuedLine<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedLine<'_> {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        match self.queue.queue.try_send(Message::Line(std::mem::take(&mut self.line))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queue.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Flushes the queue when dropped, for at most [`FLUSH_AT_EXIT`]. Keep it until the
/// process has printed its last line.
#[must_use = "dropping the guard flushes the log: keep it until main returns"]
pub struct LogGuard {
    queue: SyncSender<Message>,
}

impl LogGuard {
    /// Waits until every line queued so far is written, or until `limit` has passed.
    pub fn flush(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let (done, written) = mpsc::channel();
        let mut message = Message::Flush(done);
        loop {
            match self.queue.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    message = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = written.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.flush(FLUSH_AT_EXIT);
    }
}

/// Starts the writer thread in front of `sink`. `notice(dropped, total)` is called on
/// that thread when the queue has drained after dropping lines; it should log one
/// line (through the queue, which has room then). `None` if no thread can be started.
pub fn start<W, N>(sink: W, capacity: usize, notice: N) -> Option<(LogQueue, LogGuard)>
where
    W: Write + Send + 'static,
    N: Fn(u64, u64) + Send + 'static,
{
    start_counting(sink, capacity, notice, lines_dropped())
}

fn start_counting<W, N>(
    sink: W,
    capacity: usize,
    notice: N,
    dropped: Arc<AtomicU64>,
) -> Option<(LogQueue, LogGuard)>
where
    W: Write + Send + 'static,
    N: Fn(u64, u64) + Send + 'static,
{
    let (queue, lines) = mpsc::sync_channel(capacity);
    let counted = Arc::clone(&dropped);
    std::thread::Builder::new()
        .name("fts-log".to_owned())
        .spawn(move || write_lines(lines, sink, &counted, notice))
        .ok()?;
    Some((LogQueue { queue: queue.clone(), dropped }, LogGuard { queue }))
}

/// The writer thread: writes lines in order; when the queue runs empty after lines
/// were dropped, reports them once. A failed write is not retried (there is nowhere
/// else to say so) and not counted as dropped (a notice of it would fail too).
fn write_lines<W: Write>(
    lines: Receiver<Message>,
    mut sink: W,
    dropped: &AtomicU64,
    notice: impl Fn(u64, u64),
) {
    let mut reported = 0;
    loop {
        let message = match lines.try_recv() {
            Ok(message) => message,
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {
                let total = dropped.load(Ordering::Relaxed);
                if total > reported {
                    notice(total - reported, total);
                    reported = total;
                    continue;
                }
                match lines.recv() {
                    Ok(message) => message,
                    Err(_) => return,
                }
            }
        };
        match message {
            Message::Line(line) => {
                let _ = sink.write_all(&line);
            }
            Message::Flush(done) => {
                let _ = sink.flush();
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that takes lines only while its gate is open.
    #[derive(Clone, Default)]
    struct GatedSink {
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl GatedSink {
        fn open(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }

        fn text(&self) -> String {
            String::from_utf8(self.written.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for GatedSink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (lock, opened) = &*self.open;
            let _open = opened.wait_while(lock.lock().unwrap(), |open| !*open).unwrap();
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn log(queue: &LogQueue, line: &str) {
        let mut writer = queue.make_writer();
        writer.write_all(line.as_bytes()).unwrap();
    }

    #[test]
    fn a_stalled_sink_never_blocks_the_logger_and_what_was_dropped_is_said_once_it_drains() {
        let sink = GatedSink::default();
        let dropped = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel::<LogQueue>();
        let notices = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&notices);
        let notice = move |n: u64, total: u64| {
            seen.lock().unwrap().push((n, total));
            if let Ok(queue) = rx.try_recv() {
                log(&queue, &format!("dropped {n}\n"));
            }
        };
        let (queue, guard) = start_counting(sink.clone(), 4, notice, Arc::clone(&dropped)).unwrap();
        tx.send(queue.clone()).unwrap();

        let started = Instant::now();
        for i in 0..100 {
            log(&queue, &format!("line {i}\n"));
        }
        assert!(started.elapsed() < Duration::from_secs(5), "logging waited for the sink");
        // One line is in the writer's hands, four are queued: the rest were dropped.
        let lost = dropped.load(Ordering::Relaxed);
        assert!((95..=96).contains(&lost), "{lost} dropped");

        sink.open();
        let waited = Instant::now();
        while !sink.text().contains("dropped") && waited.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        guard.flush(Duration::from_secs(10));
        let text = sink.text();
        assert!(text.starts_with("line 0\n"), "{text}");
        assert!(text.contains(&format!("dropped {lost}\n")), "the drop was reported once drained: {text}");
        assert_eq!(*notices.lock().unwrap(), [(lost, lost)], "reported once");
    }

    #[test]
    fn lines_queued_before_exit_are_written_by_the_guard() {
        let sink = GatedSink::default();
        sink.open();
        let (queue, guard) = start_counting(sink.clone(), 64, |_, _| {}, Arc::default()).unwrap();
        for i in 0..50 {
            log(&queue, &format!("line {i}\n"));
        }
        drop(guard);
        assert_eq!(sink.text().lines().count(), 50);
    }

    #[test]
    fn the_guard_gives_up_on_a_sink_that_never_drains() {
        let sink = GatedSink::default();
        let (queue, guard) = start_counting(sink, 2, |_, _| {}, Arc::default()).unwrap();
        for i in 0..10 {
            log(&queue, &format!("line {i}\n"));
        }
        let started = Instant::now();
        guard.flush(Duration::from_millis(300));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
