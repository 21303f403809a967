//! Standard input and output for a bridge, read and written so that
//! neither a slow terminal nor a full pipe stalls the socket.
//!
//! Pipes and terminals get a thread each: regular files cannot be polled,
//! and making a pipe or terminal non-blocking (`O_NONBLOCK`) changes it for
//! every process that shares it, such as the shell. So a thread does plain
//! blocking `read(2)`/`write(2)` on a duplicate of the descriptor, and the
//! socket side stays async. Buffers circulate: a filled buffer goes one way
//! through a bounded channel and comes back empty through a second one, so
//! in steady state nothing is allocated per chunk; a buffer is only
//! allocated when every existing one is in flight (at most
//! [`QUEUE_DEPTH`] + 2 per direction).
//!
//! Regular files (`sockit connect … < file`, `sockit listen … > file`) are
//! read and written inline instead, as netcat does: they never wait for
//! another process, and handing each chunk to a thread and back would cost
//! two wake-ups per chunk for nothing.

use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

/// Filled buffers that may wait in each direction's queue. Two keep both
/// ends busy (one being written while the next is read) without holding
/// much memory.
pub const QUEUE_DEPTH: usize = 2;

/// How standard input is cut into the chunks that are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Whatever one `read(2)` returns, up to the chunk size: a terminal
    /// gives a line, a pipe what was written, a file a full chunk.
    Chunks(usize),
    /// One line (up to and including `\n`) per chunk, cut at the given
    /// size if longer. For datagram transports: one line, one datagram.
    Lines(usize),
}

impl Framing {
    fn size(self) -> usize {
        match self {
            Framing::Chunks(n) | Framing::Lines(n) => n.max(1),
        }
    }
}

/// One chunk of standard input.
#[derive(Debug)]
pub(crate) enum Chunk {
    /// `buf[..len]` was read.
    Data(Vec<u8>, usize),
    /// End of input.
    Eof,
    /// Reading failed; nothing more comes.
    Err(io::Error),
}

/// Standard input and output for a bridge.
///
/// One `Stdio` serves any number of connections one after another (`listen
/// -k`): input read but not yet sent when a connection ends goes to the
/// next one, and once input has ended every later connection sees the end
/// at once.
#[derive(Debug)]
pub struct Stdio {
    pub(crate) input: Input,
    pub(crate) output: Output,
}

impl Stdio {
    /// Bridges the process's own standard input and output.
    ///
    /// Both are used through duplicates of descriptors 0 and 1 with plain
    /// `read(2)`/`write(2)`, bypassing Rust's line-buffered `Stdout`, so
    /// binary data goes out in big chunks and nothing waits in a buffer at
    /// exit. Regular files are read and written inline, as netcat does
    /// (they never wait for another process); pipes and terminals each get
    /// a thread, so neither is ever switched to non-blocking mode.
    ///
    /// # Errors
    ///
    /// When a descriptor cannot be duplicated (`dup(2)`), for example
    /// because it is closed.
    pub fn process(framing: Framing, out_chunk: usize) -> io::Result<Stdio> {
        use std::os::fd::AsFd;
        let stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
        let stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
        let is_file = |f: &File| f.metadata().is_ok_and(|m| m.file_type().is_file());
        let input = if is_file(&stdin) {
            Input::inline(Box::new(stdin), framing)
        } else {
            Input::spawn(stdin, framing)
        };
        let out_chunk = out_chunk.max(1);
        let output = if is_file(&stdout) {
            Output::inline(Box::new(stdout), out_chunk)
        } else {
            Output::spawn(stdout, out_chunk)
        };
        Ok(Stdio { input, output })
    }

    /// Bridges any reader and writer (tests, embedding), each through its
    /// own thread: `reader` stands for standard input, `writer` for
    /// standard output.
    ///
    /// `out_chunk` is the size of each socket read whose bytes go to
    /// `writer`.
    pub fn new(
        reader: impl Read + Send + 'static,
        writer: impl Write + Send + 'static,
        framing: Framing,
        out_chunk: usize,
    ) -> Stdio {
        Stdio {
            input: Input::spawn(reader, framing),
            output: Output::spawn(writer, out_chunk.max(1)),
        }
    }
}

/// Reads chunks as [`Framing`] says.
enum Reader {
    Chunks(Box<dyn Read + Send>, usize),
    Lines(io::BufReader<Box<dyn Read + Send>>, usize),
}

impl Reader {
    fn new(reader: Box<dyn Read + Send>, framing: Framing) -> Reader {
        let size = framing.size();
        match framing {
            Framing::Chunks(_) => Reader::Chunks(reader, size),
            Framing::Lines(_) => Reader::Lines(
                io::BufReader::with_capacity(size.max(64 * 1024), reader),
                size,
            ),
        }
    }

    /// Reads the next chunk into `buf` (reused, grown as needed).
    fn fill(&mut self, buf: &mut Vec<u8>) -> Chunk {
        let result = match self {
            Reader::Chunks(reader, size) => {
                let size = *size;
                if buf.len() < size {
                    buf.resize(size, 0);
                }
                loop {
                    match reader.read(&mut buf[..size]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other,
                    }
                }
            }
            Reader::Lines(reader, size) => {
                buf.clear();
                // `read_until` retries EINTR itself; `take` cuts long lines.
                reader.take(*size as u64).read_until(b'\n', buf)
            }
        };
        match result {
            Ok(0) => Chunk::Eof,
            Ok(n) => Chunk::Data(std::mem::take(buf), n),
            Err(e) => Chunk::Err(e),
        }
    }
}

/// Where input comes from.
enum Source {
    /// A reader thread, and the channel back to it for empty buffers.
    Thread {
        filled: mpsc::Receiver<Chunk>,
        free: std_mpsc::Sender<Vec<u8>>,
    },
    /// A regular file, read here; `spare` is the buffer to read into next.
    Inline { reader: Reader, spare: Vec<u8> },
}

/// The async side of standard input.
pub(crate) struct Input {
    source: Source,
    /// Sticky: once input has ended, every later call says so.
    ended: bool,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.source {
            Source::Thread { .. } => "thread",
            Source::Inline { .. } => "inline",
        };
        f.debug_struct("Input")
            .field("source", &how)
            .field("ended", &self.ended)
            .finish()
    }
}

impl Input {
    fn inline(reader: Box<dyn Read + Send>, framing: Framing) -> Input {
        Input {
            source: Source::Inline {
                reader: Reader::new(reader, framing),
                spare: Vec::new(),
            },
            ended: false,
        }
    }

    fn spawn(reader: impl Read + Send + 'static, framing: Framing) -> Input {
        let (filled_tx, filled) = mpsc::channel(QUEUE_DEPTH);
        let (free, free_rx) = std_mpsc::channel::<Vec<u8>>();
        let mut reader = Reader::new(Box::new(reader), framing);
        let spawned = std::thread::Builder::new()
            .name("sockit-stdin".into())
            .spawn(move || loop {
                let mut buf = free_rx.try_recv().unwrap_or_default();
                let chunk = reader.fill(&mut buf);
                let last = !matches!(chunk, Chunk::Data(..));
                if filled_tx.blocking_send(chunk).is_err() || last {
                    return;
                }
            });
        let filled = match spawned {
            Ok(_) => filled,
            Err(err) => {
                // The async side sees the error as the first chunk.
                let (tx, rx) = mpsc::channel(1);
                let _ = tx.try_send(Chunk::Err(err));
                rx
            }
        };
        Input {
            source: Source::Thread { filled, free },
            ended: false,
        }
    }

    /// The next chunk; after [`Chunk::Eof`] or [`Chunk::Err`], `Eof` forever.
    pub(crate) async fn next(&mut self) -> Chunk {
        if self.ended {
            return Chunk::Eof;
        }
        let chunk = match &mut self.source {
            Source::Thread { filled, .. } => filled.recv().await.unwrap_or(Chunk::Eof),
            Source::Inline { reader, spare } => reader.fill(spare),
        };
        if !matches!(chunk, Chunk::Data(..)) {
            self.ended = true;
        }
        chunk
    }

    /// Hands a buffer back to be filled again.
    pub(crate) fn recycle(&mut self, buf: Vec<u8>) {
        match &mut self.source {
            Source::Thread { free, .. } => {
                let _ = free.send(buf);
            }
            Source::Inline { spare, .. } => *spare = buf,
        }
    }
}

/// Why writing to standard output stopped.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The reader went away (`EPIPE`): `sockit connect … | head`. Not a
    /// failure; the bridge ends quietly.
    Closed,
    /// Any other error.
    Io(io::Error),
}

enum OutMsg {
    Data(Vec<u8>, usize),
    Flush(oneshot::Sender<()>),
}

/// Where output goes.
enum Sink {
    /// A writer thread: filled buffers go out, empty ones come back.
    Thread {
        filled: mpsc::Sender<OutMsg>,
        free: std_mpsc::Receiver<Vec<u8>>,
        /// The thread's error, set before it exits.
        error: Arc<Mutex<Option<io::Error>>>,
    },
    /// A regular file, written here; `spare` is the buffer to read into.
    Inline {
        writer: Box<dyn Write + Send>,
        spare: Vec<u8>,
        failed: bool,
    },
}

/// The async side of standard output.
pub(crate) struct Output {
    sink: Sink,
    chunk: usize,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self.sink {
            Sink::Thread { .. } => "thread",
            Sink::Inline { .. } => "inline",
        };
        f.debug_struct("Output")
            .field("sink", &how)
            .field("chunk", &self.chunk)
            .finish()
    }
}

impl Output {
    fn inline(writer: Box<dyn Write + Send>, chunk: usize) -> Output {
        Output {
            sink: Sink::Inline {
                writer,
                spare: Vec::new(),
                failed: false,
            },
            chunk,
        }
    }

    fn spawn(writer: impl Write + Send + 'static, chunk: usize) -> Output {
        let (filled, mut filled_rx) = mpsc::channel::<OutMsg>(QUEUE_DEPTH);
        let (free_tx, free) = std_mpsc::channel();
        let error = Arc::new(Mutex::new(None));
        let thread_error = error.clone();
        let mut writer = writer;
        let spawned = std::thread::Builder::new()
            .name("sockit-stdout".into())
            .spawn(move || {
                while let Some(msg) = filled_rx.blocking_recv() {
                    let result = match msg {
                        OutMsg::Data(buf, len) => {
                            let result = writer.write_all(&buf[..len]);
                            let _ = free_tx.send(buf);
                            result
                        }
                        OutMsg::Flush(done) => {
                            let result = writer.flush();
                            let _ = done.send(());
                            result
                        }
                    };
                    if let Err(err) = result {
                        if let Ok(mut slot) = thread_error.lock() {
                            *slot = Some(err);
                        }
                        return;
                    }
                }
            });
        if let Err(err) = spawned {
            if let Ok(mut slot) = error.lock() {
                *slot = Some(err);
            }
        }
        Output {
            sink: Sink::Thread {
                filled,
                free,
                error,
            },
            chunk,
        }
    }

    /// A buffer to read the socket into: a returned one, or a new one when
    /// all are in flight.
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        let mut buf = match &mut self.sink {
            Sink::Thread { free, .. } => free.try_recv().unwrap_or_default(),
            Sink::Inline { spare, .. } => std::mem::take(spare),
        };
        if buf.len() < self.chunk {
            buf.resize(self.chunk, 0);
        }
        buf
    }

    /// Writes (or queues) `buf[..len]`; waits while the queue is full.
    pub(crate) async fn write(&mut self, buf: Vec<u8>, len: usize) -> Result<(), WriteError> {
        match &mut self.sink {
            Sink::Thread { filled, error, .. } => match filled.send(OutMsg::Data(buf, len)).await {
                Ok(()) => Ok(()),
                Err(_) => Err(thread_failure(error)),
            },
            Sink::Inline {
                writer,
                spare,
                failed,
            } => {
                if *failed {
                    return Err(WriteError::Closed);
                }
                let result = writer.write_all(&buf[..len]);
                *spare = buf;
                result.map_err(|e| {
                    *failed = true;
                    match e.kind() {
                        io::ErrorKind::BrokenPipe => WriteError::Closed,
                        _ => WriteError::Io(e),
                    }
                })
            }
        }
    }

    /// Waits until everything queued has been written.
    pub(crate) async fn flush(&mut self) -> Result<(), WriteError> {
        match &mut self.sink {
            Sink::Thread { filled, error, .. } => {
                let (done, wait) = oneshot::channel();
                if filled.send(OutMsg::Flush(done)).await.is_err() || wait.await.is_err() {
                    return Err(thread_failure(error));
                }
                Ok(())
            }
            Sink::Inline { failed: true, .. } => Err(WriteError::Closed),
            Sink::Inline { .. } => Ok(()),
        }
    }
}

fn thread_failure(error: &Mutex<Option<io::Error>>) -> WriteError {
    let err = error.lock().ok().and_then(|mut slot| slot.take());
    match err {
        Some(err) if err.kind() != io::ErrorKind::BrokenPipe => WriteError::Io(err),
        // No error recorded means it was taken by an earlier call, which
        // already reported it: from here on, output is simply closed.
        _ => WriteError::Closed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that keeps everything, shared with the test.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct BrokenPipe;

    impl Write for BrokenPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    async fn collect(input: &mut Input) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        loop {
            match input.next().await {
                Chunk::Data(buf, len) => {
                    chunks.push(buf[..len].to_vec());
                    input.recycle(buf);
                }
                Chunk::Eof => return chunks,
                Chunk::Err(e) => panic!("{e}"),
            }
        }
    }

    #[tokio::test]
    async fn chunks_cover_the_input_and_end_stays_ended() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut stdio = Stdio::new(
            io::Cursor::new(data.clone()),
            Sink::default(),
            Framing::Chunks(4096),
            4096,
        );
        let chunks = collect(&mut stdio.input).await;
        assert!(chunks.iter().all(|c| c.len() <= 4096));
        assert_eq!(chunks.concat(), data);
        assert!(matches!(stdio.input.next().await, Chunk::Eof));
    }

    #[tokio::test]
    async fn lines_are_cut_at_newlines_and_at_the_size() {
        let mut stdio = Stdio::new(
            io::Cursor::new(b"one\ntwo\n0123456789\nlast".to_vec()),
            Sink::default(),
            Framing::Lines(8),
            4096,
        );
        let chunks = collect(&mut stdio.input).await;
        let expected: [&[u8]; 5] = [b"one\n", b"two\n", b"01234567", b"89\n", b"last"];
        assert_eq!(chunks, expected);
    }

    #[tokio::test]
    async fn regular_files_are_read_and_written_inline() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("in"), dir.path().join("out"));
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let mut input = Input::inline(Box::new(File::open(&src).unwrap()), Framing::Chunks(4096));
        let mut output = Output::inline(Box::new(File::create(&dst).unwrap()), 4096);
        loop {
            match input.next().await {
                Chunk::Data(buf, len) => {
                    let mut out = output.buffer();
                    out[..len].copy_from_slice(&buf[..len]);
                    input.recycle(buf);
                    output.write(out, len).await.unwrap();
                }
                Chunk::Eof => break,
                Chunk::Err(e) => panic!("{e}"),
            }
        }
        output.flush().await.unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), data);
        assert!(matches!(input.next().await, Chunk::Eof));
    }

    #[tokio::test]
    async fn output_writes_in_order_and_flush_waits() {
        let sink = Sink::default();
        let mut stdio = Stdio::new(io::empty(), sink.clone(), Framing::Chunks(1), 3);
        for part in [b"abc", b"def"] {
            let mut buf = stdio.output.buffer();
            assert_eq!(buf.len(), 3);
            buf.copy_from_slice(part);
            stdio.output.write(buf, 2).await.unwrap();
        }
        stdio.output.flush().await.unwrap();
        assert_eq!(&*sink.0.lock().unwrap(), b"abde");
    }

    #[tokio::test]
    async fn a_broken_pipe_on_output_is_a_quiet_close() {
        let mut stdio = Stdio::new(io::empty(), BrokenPipe, Framing::Chunks(1), 16);
        let buf = stdio.output.buffer();
        // The first write may be queued before the thread fails.
        let first = stdio.output.write(buf, 4).await;
        let flushed = stdio.output.flush().await;
        assert!(matches!(first, Ok(()) | Err(WriteError::Closed)));
        assert!(matches!(flushed, Err(WriteError::Closed)), "{flushed:?}");
    }
}
