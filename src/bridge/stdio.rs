//! Standard input and output, each on its own thread, handing buffers to
//! and from the async side.
//!
//! Why threads: stdin and stdout may be a terminal, a pipe or a regular
//! file. Regular files cannot be polled, and making a pipe or terminal
//! non-blocking (`O_NONBLOCK`) changes it for every process that shares it,
//! such as the shell. So each gets a thread doing plain blocking
//! `read(2)`/`write(2)` on a duplicate of the descriptor, and the socket side
//! stays async.
//!
//! Buffers circulate: a filled buffer goes one way through a bounded
//! channel, and comes back empty through a second channel to be filled
//! again. In steady state nothing is allocated per chunk; a buffer is only
//! allocated when every existing one is in flight (at most
//! [`QUEUE_DEPTH`] + 2 per direction).

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

/// Standard input and output for a bridge: a reader thread, a writer
/// thread, and the channels between them and the async side.
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
    /// The threads use duplicates of descriptors 0 and 1 and write with
    /// plain `write(2)`, bypassing Rust's line-buffered `Stdout`, so binary
    /// data goes out in big chunks and nothing waits in a buffer at exit.
    ///
    /// # Errors
    ///
    /// When a descriptor cannot be duplicated (`dup(2)`), for example
    /// because it is closed.
    pub fn process(framing: Framing, out_chunk: usize) -> io::Result<Stdio> {
        use std::os::fd::AsFd;
        let stdin = std::fs::File::from(io::stdin().as_fd().try_clone_to_owned()?);
        let stdout = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?);
        Ok(Stdio::new(stdin, stdout, framing, out_chunk))
    }

    /// Bridges any reader and writer (tests, embedding): `reader` stands for
    /// standard input, `writer` for standard output.
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

/// The async side of the reader thread.
#[derive(Debug)]
pub(crate) struct Input {
    filled: mpsc::Receiver<Chunk>,
    free: std_mpsc::Sender<Vec<u8>>,
    /// Sticky: once input has ended, every later call says so.
    ended: bool,
}

impl Input {
    fn spawn(reader: impl Read + Send + 'static, framing: Framing) -> Input {
        let (filled_tx, filled) = mpsc::channel(QUEUE_DEPTH);
        let (free, free_rx) = std_mpsc::channel::<Vec<u8>>();
        let spawned = std::thread::Builder::new()
            .name("sockit-stdin".into())
            .spawn(move || read_loop(reader, framing, &filled_tx, &free_rx));
        let mut input = Input {
            filled,
            free,
            ended: false,
        };
        if let Err(err) = spawned {
            // The receiver sees the error as the first chunk.
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(Chunk::Err(err));
            input.filled = rx;
        }
        input
    }

    /// The next chunk; after [`Chunk::Eof`] or [`Chunk::Err`], `Eof` forever.
    pub(crate) async fn next(&mut self) -> Chunk {
        if self.ended {
            return Chunk::Eof;
        }
        let chunk = self.filled.recv().await.unwrap_or(Chunk::Eof);
        if !matches!(chunk, Chunk::Data(..)) {
            self.ended = true;
        }
        chunk
    }

    /// Hands a buffer back to the reader thread for refilling.
    pub(crate) fn recycle(&self, buf: Vec<u8>) {
        let _ = self.free.send(buf);
    }
}

fn read_loop(
    reader: impl Read,
    framing: Framing,
    filled: &mpsc::Sender<Chunk>,
    free: &std_mpsc::Receiver<Vec<u8>>,
) {
    let size = framing.size();
    match framing {
        Framing::Chunks(_) => {
            let mut reader = reader;
            fill_loop(filled, free, |buf| {
                if buf.len() < size {
                    buf.resize(size, 0);
                }
                loop {
                    match reader.read(&mut buf[..size]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => return other,
                    }
                }
            });
        }
        Framing::Lines(_) => {
            let mut reader = io::BufReader::with_capacity(size.max(64 * 1024), reader);
            fill_loop(filled, free, |buf| {
                buf.clear();
                // `read_until` retries EINTR itself; `take` cuts long lines.
                (&mut reader).take(size as u64).read_until(b'\n', buf)
            });
        }
    }
}

/// Fills buffers with `read` and sends them, until end of input, an error,
/// or the async side going away.
fn fill_loop(
    filled: &mpsc::Sender<Chunk>,
    free: &std_mpsc::Receiver<Vec<u8>>,
    mut read: impl FnMut(&mut Vec<u8>) -> io::Result<usize>,
) {
    loop {
        let mut buf = free.try_recv().unwrap_or_default();
        let chunk = match read(&mut buf) {
            Ok(0) => Chunk::Eof,
            Ok(n) => Chunk::Data(buf, n),
            Err(e) => Chunk::Err(e),
        };
        let last = !matches!(chunk, Chunk::Data(..));
        if filled.blocking_send(chunk).is_err() || last {
            return;
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

impl std::fmt::Debug for OutMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutMsg::Data(_, len) => write!(f, "Data({len})"),
            OutMsg::Flush(_) => f.write_str("Flush"),
        }
    }
}

/// The async side of the writer thread.
#[derive(Debug)]
pub(crate) struct Output {
    filled: mpsc::Sender<OutMsg>,
    free: std_mpsc::Receiver<Vec<u8>>,
    /// The writer thread's error, set before it exits.
    error: Arc<Mutex<Option<io::Error>>>,
    chunk: usize,
}

impl Output {
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
            filled,
            free,
            error,
            chunk,
        }
    }

    /// A buffer to read the socket into: a returned one, or a new one when
    /// all are in flight.
    pub(crate) fn buffer(&self) -> Vec<u8> {
        let mut buf = self.free.try_recv().unwrap_or_default();
        if buf.len() < self.chunk {
            buf.resize(self.chunk, 0);
        }
        buf
    }

    /// Queues `buf[..len]` for writing; waits while the queue is full.
    pub(crate) async fn write(&self, buf: Vec<u8>, len: usize) -> Result<(), WriteError> {
        match self.filled.send(OutMsg::Data(buf, len)).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.failure()),
        }
    }

    /// Waits until everything queued has been written.
    pub(crate) async fn flush(&self) -> Result<(), WriteError> {
        let (done, wait) = oneshot::channel();
        if self.filled.send(OutMsg::Flush(done)).await.is_err() || wait.await.is_err() {
            return Err(self.failure());
        }
        Ok(())
    }

    fn failure(&self) -> WriteError {
        let err = self.error.lock().ok().and_then(|mut slot| slot.take());
        match err {
            Some(err) if err.kind() != io::ErrorKind::BrokenPipe => WriteError::Io(err),
            // No error recorded means it was taken by an earlier call, which
            // already reported it: from here on, output is simply closed.
            _ => WriteError::Closed,
        }
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
    async fn output_writes_in_order_and_flush_waits() {
        let sink = Sink::default();
        let stdio = Stdio::new(io::empty(), sink.clone(), Framing::Chunks(1), 3);
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
        let stdio = Stdio::new(io::empty(), BrokenPipe, Framing::Chunks(1), 16);
        let buf = stdio.output.buffer();
        // The first write may be queued before the thread fails.
        let first = stdio.output.write(buf, 4).await;
        let flushed = stdio.output.flush().await;
        assert!(matches!(first, Ok(()) | Err(WriteError::Closed)));
        assert!(matches!(flushed, Err(WriteError::Closed)), "{flushed:?}");
    }
}
