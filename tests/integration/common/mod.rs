//! Helpers every integration test shares: run the real binary, wait for its
//! readiness line, talk to it over sockets with timeouts, and clean up.

#![allow(dead_code)] // each test module uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A `sockit` command for the binary under test.
pub fn sockit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sockit"))
}

/// Output collected from a child's stderr by a background thread, so the
/// pipe never fills and tests can wait for a line.
#[derive(Clone, Default)]
pub struct Lines(Arc<(Mutex<Vec<String>>, Condvar)>);

impl Lines {
    fn collect(self, stream: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let (lines, cond) = &*self.0;
                lines.lock().unwrap().push(line);
                cond.notify_all();
            }
        })
    }

    /// Waits for a line containing `needle` and returns it.
    #[track_caller]
    pub fn wait_for(&self, needle: &str) -> String {
        let (lines, cond) = &*self.0;
        let deadline = Instant::now() + WAIT;
        let mut guard = lines.lock().unwrap();
        loop {
            if let Some(line) = guard.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no line with {needle:?} within {WAIT:?}; got:\n{}",
                guard.join("\n")
            );
            guard = cond.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// Waits until `n` lines contain `needle`.
    #[track_caller]
    pub fn wait_for_count(&self, needle: &str, n: usize) {
        let (lines, cond) = &*self.0;
        let deadline = Instant::now() + WAIT;
        let mut guard = lines.lock().unwrap();
        while guard.iter().filter(|l| l.contains(needle)).count() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "fewer than {n} lines with {needle:?} within {WAIT:?}; got:\n{}",
                guard.join("\n")
            );
            guard = cond.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// Everything collected so far.
    pub fn text(&self) -> String {
        self.0 .0.lock().unwrap().join("\n")
    }
}

/// A running `sockit serve`, killed and reaped on drop.
pub struct Server {
    child: Child,
    /// The first address from its `Serving … on ADDR ...` line (for a
    /// UDP endpoint, without `udp://`; `0.0.0.0:0` for a Unix one).
    pub addr: SocketAddr,
    /// That ADDR as printed: an endpoint `sockit send` accepts
    /// (`127.0.0.1:PORT`, `udp://…`, `unix:/path`, `seqpacket:@name`, …).
    pub endpoint: String,
    /// Its stderr, line by line.
    pub stderr: Lines,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `sockit serve -l 127.0.0.1:0 ARGS…` and waits for readiness.
    pub fn start(args: &[&str]) -> Server {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Server::start_raw(&all)
    }

    /// Starts `sockit ARGS…` (which must print a `Serving` line) and waits
    /// for readiness.
    pub fn start_raw(args: &[&str]) -> Server {
        let mut cmd = sockit();
        cmd.args(args);
        Server::start_command(cmd)
    }

    /// Starts `sockit serve -l 127.0.0.1:0 ARGS…` under `prlimit`, with the
    /// soft and hard descriptor limits both at `nofile`, and waits for
    /// readiness.
    pub fn start_with_nofile(nofile: u64, args: &[&str]) -> Server {
        let mut cmd = Command::new("prlimit");
        cmd.arg(format!("--nofile={nofile}:{nofile}"))
            .arg(env!("CARGO_BIN_EXE_sockit"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args);
        Server::start_command(cmd)
    }

    /// Starts `cmd` (which must run a server printing a `Serving` line) and
    /// waits for readiness.
    pub fn start_command(mut cmd: Command) -> Server {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sockit");
        let stderr = Lines::default();
        let reader = stderr.clone().collect(child.stderr.take().unwrap());
        let mut server = Server {
            child,
            addr: "0.0.0.0:0".parse().unwrap(),
            endpoint: String::new(),
            stderr,
            reader: Some(reader),
        };
        let line = server.stderr.wait_for("Serving ");
        let addr = line
            .split(" on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        server.endpoint = addr.to_owned();
        let unix = ["unix:", "unix-dgram:", "seqpacket:"]
            .iter()
            .any(|scheme| addr.starts_with(scheme));
        if !unix {
            server.addr = addr
                .trim_start_matches("udp://")
                .parse()
                .unwrap_or_else(|_| panic!("bad address in {line:?}"));
        }
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Sends SIGTERM and waits for the exit, returning its status and stderr.
    #[track_caller]
    pub fn terminate(self) -> (ExitStatus, String) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        self.terminate_wait()
    }

    /// Waits for the exit (after a signal already sent), returning its
    /// status and stderr.
    #[track_caller]
    pub fn terminate_wait(mut self) -> (ExitStatus, String) {
        let status =
            wait_timeout(&mut self.child, WAIT).expect("server did not exit after SIGTERM");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, self.stderr.text())
    }

    /// Open descriptors of the server process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// Waits up to [`WAIT`] for the descriptor count to come back to
    /// `expected`, and returns the last count seen.
    pub fn wait_fd_count(&self, expected: usize) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.fd_count();
            if now <= expected || Instant::now() >= deadline {
                return now;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the server process, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// CPU time the server has used, user plus system
    /// (`/proc/PID/stat` fields 14 and 15).
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // The command name (field 2) may hold spaces; fields after it do not.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second() as f64)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the exit after a signal was sent, returning its status,
    /// how long it took, and stderr.
    #[track_caller]
    pub fn wait_exit(mut self) -> (ExitStatus, Duration, String) {
        let start = Instant::now();
        let status = wait_timeout(&mut self.child, WAIT).expect("server did not exit");
        let took = start.elapsed();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        (status, took, self.stderr.text())
    }
}

/// `sysconf(_SC_CLK_TCK)`, the unit of CPU times in `/proc/PID/stat`.
fn clock_ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// Raises this test process's soft descriptor limit to at least `want`
/// (up to the hard limit), for tests that open many connections.
pub fn raise_nofile(want: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < want {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, want.min(hard), hard);
    }
    getrlimit(Resource::RLIMIT_NOFILE).unwrap().0
}

/// Resets `stream` (SO_LINGER 0, then close): the peer gets RST, not FIN.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

/// The request every load test sends.
pub const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";

/// Reads one HTTP response from a buffered reader: `Ok(Some(head+body))`,
/// `Ok(None)` on a clean end of stream before its first byte, and an error
/// on anything else (including a response cut short).
pub fn read_response_buffered(
    reader: &mut BufReader<TcpStream>,
) -> std::io::Result<Option<String>> {
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("response cut short after {head:?}"),
                ))
            };
        }
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            length = v.trim().parse().unwrap();
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(head + &String::from_utf8_lossy(&body)))
}

/// The `served N connections, M requests, E errors` summary line, parsed.
#[track_caller]
pub fn summary(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("served "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Any child process, killed and reaped on drop, with its stdout collected
/// line by line.
pub struct ChildGuard {
    child: Child,
    /// Its stdout, line by line.
    pub stdout: Lines,
}

impl ChildGuard {
    /// Spawns `cmd` with stdout piped and stdin, stderr null.
    pub fn spawn(cmd: &mut Command) -> ChildGuard {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let stdout = Lines::default();
        stdout.clone().collect(child.stdout.take().unwrap());
        ChildGuard { child, stdout }
    }

    /// Waits for a stdout line containing `needle`.
    #[track_caller]
    pub fn wait_for_stdout(&mut self, needle: &str) -> String {
        self.stdout.wait_for(needle)
    }

    /// Waits up to `limit` for the child to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_timeout(&mut self.child, limit)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `limit` for `child` to exit.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command to completion within [`WAIT`], killing it otherwise.
#[track_caller]
pub fn run(cmd: &mut Command) -> std::process::Output {
    run_within(cmd, WAIT)
}

/// Runs a command to completion within `limit`, killing it otherwise.
#[track_caller]
pub fn run_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = Lines::default();
    let mut stdout = child.stdout.take().unwrap();
    let stdout_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = out.clone().collect(child.stderr.take().unwrap());
    let status = match wait_timeout(&mut child, limit) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command {cmd:?} did not finish within {limit:?}");
        }
    };
    let stdout = stdout_reader.join().unwrap();
    err_reader.join().unwrap();
    let mut stderr = out.text().into_bytes();
    if !stderr.is_empty() {
        stderr.push(b'\n');
    }
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}

/// A TCP connection with 2 s read and write timeouts, so a bug fails the
/// test instead of hanging it.
#[track_caller]
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream
}

/// Writes all of `bytes`.
#[track_caller]
pub fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).expect("write");
}

/// Reads until the peer closes.
#[track_caller]
pub fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).expect("read to end of stream");
    buf
}

/// Reads exactly `n` bytes.
#[track_caller]
pub fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).expect("read");
    buf
}

/// Reads one HTTP response (head and a Content-Length body) and returns it whole.
#[track_caller]
pub fn read_response(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let body = if head.starts_with("HTTP/1.1 200") || length > 0 {
        read_exact(stream, length)
    } else {
        Vec::new()
    };
    head + &String::from_utf8(body).unwrap()
}

/// Shows bytes escaped, for assertion messages.
pub fn escaped(bytes: &[u8]) -> String {
    sockit::escape::Escaped::new(bytes).to_string()
}

/// Asserts two byte strings are equal, showing both escaped when not.
#[track_caller]
pub fn assert_bytes_eq(actual: &[u8], expected: &[u8]) {
    assert!(
        actual == expected,
        "bytes differ:\n  actual: b'{}'\nexpected: b'{}'",
        escaped(actual),
        escaped(expected)
    );
}

/// A fresh path for a Unix socket in a temporary directory, removed with it.
pub fn temp_socket_path(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    (dir, path)
}

/// Whether a program is on PATH (peers such as curl, nc, socat).
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs an inline python3 script with arguments and returns its stdout.
#[track_caller]
pub fn python(script: &str, args: &[&str]) -> Vec<u8> {
    let out = run(Command::new("python3").arg("-c").arg(script).args(args));
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Bytes collected from a child's stdout by a background thread, so tests
/// can wait for some to arrive while the child runs.
#[derive(Clone, Default)]
pub struct Bytes(Arc<(Mutex<Vec<u8>>, Condvar)>);

impl Bytes {
    fn collect(self, mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (bytes, cond) = &*self.0;
                bytes.lock().unwrap().extend_from_slice(&chunk[..n]);
                cond.notify_all();
            }
        })
    }

    /// Waits until the bytes contain `needle`.
    #[track_caller]
    pub fn wait_for(&self, needle: &[u8]) {
        let (bytes, cond) = &*self.0;
        let deadline = Instant::now() + WAIT;
        let mut guard = bytes.lock().unwrap();
        while !guard.windows(needle.len()).any(|w| w == needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no b'{}' within {WAIT:?}; got b'{}'",
                escaped(needle),
                escaped(&guard)
            );
            guard = cond.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// Everything collected so far.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0 .0.lock().unwrap())
    }
}

/// A child with stdout collected as bytes and stderr as lines, killed and
/// reaped on drop; for commands that run alongside the test (`sockit
/// listen`, `nc -l`).
pub struct Running {
    child: Child,
    /// Its stdin, when spawned with `Stdio::piped()`.
    pub stdin: Option<std::process::ChildStdin>,
    /// Its stdout, as it arrives.
    pub stdout: Bytes,
    /// Its stderr, line by line.
    pub stderr: Lines,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Spawns `cmd` with the given stdin, capturing stdout and stderr.
    #[track_caller]
    pub fn spawn(cmd: &mut Command, stdin: Stdio) -> Running {
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = Bytes::default();
        let stderr = Lines::default();
        let readers = vec![
            stdout.clone().collect(child.stdout.take().unwrap()),
            stderr.clone().collect(child.stderr.take().unwrap()),
        ];
        Running {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Waits for a stderr line with `marker` and returns the address after
    /// its ` on ` (`Listening on 127.0.0.1:PORT ...`).
    #[track_caller]
    pub fn addr_after(&self, marker: &str) -> SocketAddr {
        let line = self.stderr.wait_for(marker);
        line.split(" on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to [`WAIT`] for the exit without closing stdin.
    #[track_caller]
    pub fn wait_with_stdin_open(&mut self) -> ExitStatus {
        wait_timeout(&mut self.child, WAIT).unwrap_or_else(|| {
            panic!(
                "process did not exit within {WAIT:?}; stderr:\n{}",
                self.stderr.text()
            )
        })
    }

    /// Closes stdin, waits up to [`WAIT`] for the exit, and returns the
    /// status, all of stdout and all of stderr.
    #[track_caller]
    pub fn finish(mut self) -> (ExitStatus, Vec<u8>, String) {
        drop(self.stdin.take());
        let status = match wait_timeout(&mut self.child, WAIT) {
            Some(status) => status,
            None => panic!(
                "process did not exit within {WAIT:?}; stderr:\n{}",
                self.stderr.text()
            ),
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        (status, self.stdout.take(), self.stderr.text())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file in a fresh temporary directory holding `bytes`, opened for reading
/// as a child's stdin.
pub fn stdin_file(bytes: &[u8]) -> (tempfile::TempDir, Stdio) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("stdin");
    std::fs::write(&path, bytes).expect("write stdin file");
    let file = std::fs::File::open(&path).expect("open stdin file");
    (dir, Stdio::from(file))
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something listens on TCP `port` (read from /proc/net/tcp
/// and tcp6, so the wait does not use up a one-shot listener's accept).
#[track_caller]
pub fn wait_for_tcp_listener(port: u16) {
    let deadline = Instant::now() + WAIT;
    let needle = format!(":{port:04X} ");
    loop {
        let listening = ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
            std::fs::read_to_string(table).is_ok_and(|text| {
                text.lines().skip(1).any(|row| {
                    let cols: Vec<&str> = row.split_whitespace().collect();
                    // local_address is column 1, st (state) column 3; 0A is LISTEN.
                    cols.len() > 3 && format!("{} ", cols[1]).ends_with(&needle) && cols[3] == "0A"
                })
            })
        });
        if listening {
            return;
        }
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Deterministic test data: `len` bytes of every value, in a pattern that
/// does not repeat within a chunk, so a lost or reordered chunk shows.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

/// FNV-1a of `bytes`: a checksum to print when transfers differ.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// Asserts a transfer arrived whole, showing sizes and checksums if not
/// (the data is too big to print).
#[track_caller]
pub fn assert_same_data(what: &str, actual: &[u8], expected: &[u8]) {
    assert!(
        actual == expected,
        "{what}: got {} bytes (checksum {:016x}), expected {} bytes (checksum {:016x})",
        actual.len(),
        checksum(actual),
        expected.len(),
        checksum(expected)
    );
}
