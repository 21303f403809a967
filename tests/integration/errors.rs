//! Every error a user can provoke from the command line: one clear line on
//! stderr and a non-zero status, never a panic.
//!
//! Usage errors are clap's (status 2): the first line says it all, then
//! clap's "For more information, try '--help'." Runtime errors are ours
//! (status 1): exactly one line, `sockit: error: …`.

use std::process::Command;

use crate::common::{have, run, sockit};

/// One row: what to run, the status, and text the first line must contain.
struct Case {
    what: &'static str,
    args: Vec<String>,
    status: i32,
    needle: String,
    /// Run through `sh -c` with this redirection (for stdin cases).
    stdin_from: Option<&'static str>,
    /// Run inside a new user namespace, as an unprivileged user.
    unprivileged: bool,
}

fn case(what: &'static str, args: &[&str], status: i32, needle: &str) -> Case {
    Case {
        what,
        args: args.iter().map(|a| a.to_string()).collect(),
        status,
        needle: needle.to_owned(),
        stdin_from: None,
        unprivileged: false,
    }
}

fn command(case: &Case) -> Command {
    let bin = env!("CARGO_BIN_EXE_sockit");
    if let Some(file) = case.stdin_from {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("exec \"$0\" \"$@\" < {file}"))
            .arg(bin)
            .args(&case.args);
        cmd
    } else if case.unprivileged {
        let mut cmd = Command::new("unshare");
        cmd.arg("--user").arg(bin).args(&case.args);
        cmd
    } else {
        let mut cmd = sockit();
        cmd.args(&case.args);
        cmd
    }
}

#[test]
fn every_user_error_is_one_clear_line_and_a_non_zero_status() {
    // A port something else holds, and one nothing listens on.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = holder.local_addr().unwrap().to_string();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut cases = vec![
        case(
            "unknown command",
            &["frobnicate"],
            2,
            "unrecognized subcommand 'frobnicate'",
        ),
        case(
            "unknown flag",
            &["serve", "--fast"],
            2,
            "unexpected argument '--fast'",
        ),
        case(
            "max-conns of 0",
            &["serve", "--max-conns", "0"],
            2,
            "invalid value '0' for '--max-conns <N>'",
        ),
        case(
            "backlog not a number",
            &["serve", "--backlog", "many"],
            2,
            "invalid value 'many' for '--backlog <N>'",
        ),
        case(
            "grace not a duration",
            &["serve", "--grace", "soon"],
            2,
            "'soon' is not a duration",
        ),
        case(
            "negative header timeout",
            &["serve", "--header-timeout=-1"],
            2,
            "'-1' is not a duration",
        ),
        case(
            "idle timeout not a duration",
            &["serve", "--idle-timeout", "1x"],
            2,
            "'1x' is not a duration",
        ),
        case(
            "write timeout not a duration",
            &["serve", "--write-timeout", "x"],
            2,
            "'x' is not a duration",
        ),
        case(
            "header size not a size",
            &["serve", "--max-header-bytes", "8X"],
            2,
            "'8X' is not a size",
        ),
        case(
            "endpoint without a path",
            &["serve", "--listen", "unix:"],
            2,
            "invalid endpoint 'unix:'",
        ),
        case(
            "port out of range",
            &["serve", "--listen", "70000"],
            2,
            "invalid endpoint '70000'",
        ),
        case(
            "IPv6 without brackets",
            &["serve", "--listen", "::1:80"],
            2,
            "needs brackets",
        ),
        case(
            "unknown scheme",
            &["send", "http://x:1"],
            2,
            "unknown scheme 'http://'",
        ),
        case(
            "send timeout not a duration",
            &["send", "--timeout", "later"],
            2,
            "'later' is not a duration",
        ),
        case(
            "port in use",
            &["serve", "--listen", &busy],
            1,
            &format!("cannot listen on {busy}: address already in use"),
        ),
        case(
            "address not on this host",
            &["serve", "--listen", "192.0.2.1:0"],
            1,
            "cannot listen on 192.0.2.1:0",
        ),
        case(
            "unresolvable name",
            &["serve", "--listen", "no-such-host.invalid:80"],
            1,
            "cannot resolve no-such-host.invalid:80",
        ),
        case(
            "connection refused",
            &["send", &closed],
            1,
            &format!("cannot connect to {closed}: connection refused"),
        ),
        Case {
            stdin_from: Some("/"),
            ..case(
                "unreadable standard input",
                &["send", &closed, "-"],
                1,
                "cannot read standard input",
            )
        },
    ];
    // Binding a port below 1024 needs root; as root, drop privileges with a
    // user namespace (inside it we are uid 0, but not over the host's ports).
    if have("unshare")
        && Command::new("unshare")
            .args(["--user", "true"])
            .status()
            .is_ok_and(|s| s.success())
    {
        cases.push(Case {
            unprivileged: true,
            ..case(
                "privileged port",
                &["serve", "--listen", "127.0.0.1:1"],
                1,
                "cannot listen on 127.0.0.1:1: permission denied",
            )
        });
    } else {
        eprintln!("skipped the privileged-port case: unshare --user is not available here");
    }
    let mut failures = Vec::new();
    for case in &cases {
        let out = run(&mut command(case));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let first = stderr.lines().next().unwrap_or("");
        let prefix = if case.status == 1 {
            "sockit: error: "
        } else {
            "error: "
        };
        let lines = stderr.lines().filter(|l| !l.trim().is_empty()).count();
        let ok = out.status.code() == Some(case.status)
            && first.starts_with(prefix)
            && first.contains(&case.needle)
            && !stderr.contains("panicked")
            && if case.status == 1 {
                lines == 1
            } else {
                lines <= 3
            };
        if !ok {
            failures.push(format!(
                "{}: {:?} exited {:?}, stderr:\n{stderr}",
                case.what,
                case.args,
                out.status.code()
            ));
        }
    }
    drop(holder);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Options that parse but cannot work together are usage errors too: exit
/// status 2 (ncat(1), EXIT CODE), one line, found before anything is opened.
#[test]
fn option_clashes_found_after_parsing_exit_2_with_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "serve",
                "--service",
                "echo",
                "--reply",
                "x",
                "-l",
                "127.0.0.1:0",
            ],
            "--reply only applies to --service hello",
        ),
        (
            &["bench", "http://127.0.0.1:9/", "--payload", "x", "-n", "1"],
            "--payload and --expect-bytes are for raw targets",
        ),
        (
            &["bench", "http://127.0.0.1:9/", "-H", "nocolon", "-n", "1"],
            "invalid header 'nocolon'",
        ),
        (
            &["bench", "tcp://127.0.0.1:9", "-X", "POST", "-n", "1"],
            "-X, -H, --body and --close are for http:// targets",
        ),
        (
            &["send", "127.0.0.1:9", "--insecure", "hi"],
            "apply to tls:// targets",
        ),
        (
            &["serve", "--client-ca", "/nonexistent", "-l", "127.0.0.1:0"],
            "--client-ca needs TLS",
        ),
    ];
    let mut failures = Vec::new();
    for (args, needle) in cases {
        let out = run(sockit().args(*args));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let ok = out.status.code() == Some(2)
            && lines.len() == 1
            && lines[0].starts_with("sockit: error: ")
            && lines[0].contains(needle);
        if !ok {
            failures.push(format!(
                "{args:?} exited {:?}, stderr:\n{stderr}",
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The exit codes are documented where a user looks first.
#[test]
fn help_documents_the_exit_codes() {
    let out = run(sockit().arg("--help"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Exit status: 0 success, 1 runtime failure, 2 usage error."),
        "{stdout}"
    );
}

/// A bench run in which no request succeeded is a failed run (issue 16: it
/// used to print `errors 10` and exit 0): the report is still printed, then
/// one line on stderr, exit status 1 (a runtime failure, not a usage error).
#[test]
fn bench_with_no_successful_request_exits_1() {
    // Port 1 on loopback: nothing listens there, every connect is refused.
    let out = run(sockit().args(["bench", "http://127.0.0.1:1/", "-n", "10", "-c", "1"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("errors"),
        "the report is still printed: {stdout}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("sockit: error: no request to ") && last.contains("succeeded"),
        "{stderr}"
    );
}
