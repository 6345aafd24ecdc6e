//! Child processes of an execution: spawning in a session of their own, reading their
//! pipes as chunks or lines, supervising them (exit, timeout, client gone, shutdown)
//! and killing everything left in their session or process group.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdout};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::wire::Event;

/// Prefix of the agent's own configuration variables, kept out of children's env.
pub const AGENT_ENV_PREFIX: &str = wire::env::PREFIX;
/// How long output is still read after the process ended, for pipes held open by a
/// process that left the session.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// Variables set on top of the agent's environment.
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    /// Written to stdin, which is then closed; `None`: stdin is `/dev/null`.
    pub stdin: Option<Vec<u8>>,
}

/// A running child with its pipes taken out.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    /// The child's pid, which is also its session and process-group id.
    pub pid: i32,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Starts `spec` in a new session (`setsid`), stdout/stderr piped.
#[allow(unsafe_code)] // pre_exec(setsid): see the SAFETY note below
pub fn spawn(spec: SpawnSpec) -> io::Result<Spawned> {
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&spec.args).current_dir(&spec.cwd);
    for (k, _) in std::env::vars_os() {
        if k.as_bytes().starts_with(AGENT_ENV_PREFIX.as_bytes()) {
            cmd.env_remove(k);
        }
    }
    cmd.envs(spec.env)
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    // SAFETY: the closure runs in the forked child before exec and only calls setsid(2),
    // which is async-signal-safe; it touches no memory shared with the parent.
    // libc rather than rustix: gVisor's setsid(2) returns 0 on success, which
    // rustix's `Pid` asserts against (a panic in the forked child); only -1 is an error.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| io::Error::other("spawned child has no pid"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("child stdout not piped"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| io::Error::other("child stderr not piped"))?;
    if let (Some(mut stdin), Some(data)) = (child.stdin.take(), spec.stdin) {
        tokio::spawn(async move {
            // A child that exits without reading its input is not an error.
            let _ = stdin.write_all(&data).await;
            let _ = stdin.shutdown().await;
        });
    }
    Ok(Spawned {
        child,
        pid,
        stdout,
        stderr,
    })
}

/// Pids of live (non-zombie) processes whose session id or process-group id is
/// `leader`, read from `/proc`. Excludes the agent itself.
pub fn session_members(leader: i32) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ent in dir.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((state, pgrp, sid)) = parse_stat(&stat) {
            if (sid == leader || pgrp == leader) && state != 'Z' && state != 'X' {
                out.push(pid);
            }
        }
    }
    out
}

/// `(state, pgrp, session)` from a `/proc/<pid>/stat` line (the command name may hold
/// spaces and parentheses, so fields are counted after the last `)`).
pub fn parse_stat(stat: &str) -> Option<(char, i32, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    let pgrp = f.next()?.parse().ok()?;
    let sid = f.next()?.parse().ok()?;
    Some((state, pgrp, sid))
}

/// SIGKILLs the process group `leader` and every process whose session or group is
/// `leader` (grandchildren that moved to another group but kept the session too),
/// repeating until none is left (or a bound is reached). Returns how many processes
/// were found and signalled besides the group kill.
pub async fn kill_session(leader: i32) -> usize {
    let Some(pid) = Pid::from_raw(leader) else {
        return 0;
    };
    let mut signalled = 0;
    for round in 0u64..50 {
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        let members = session_members(leader);
        if members.is_empty() {
            break;
        }
        for m in &members {
            if let Some(p) = Pid::from_raw(*m) {
                let _ = rustix::process::kill_process(p, Signal::KILL);
            }
        }
        signalled += members.len();
        tokio::time::sleep(Duration::from_millis(5 * (round + 1).min(20))).await;
    }
    signalled
}

/// Why supervision ended.
#[derive(Debug)]
pub enum Outcome {
    /// The process exited on its own.
    Exited(Option<ExitStatus>),
    /// The timeout elapsed; the session was killed.
    TimedOut(Option<ExitStatus>),
    /// The client went away (the event receiver was dropped); the session was killed.
    Disconnected,
    /// The agent is shutting down; the session was killed.
    Shutdown(Option<ExitStatus>),
}

/// Waits for the child, its timeout, the client leaving or shutdown. In every case
/// the session is killed afterwards (after a normal exit this removes what the
/// command left running in its session) and the child reaped.
pub async fn supervise(
    child: &mut Child,
    pid: i32,
    timeout: Duration,
    tx: &mpsc::Sender<Event>,
    shutdown: &CancellationToken,
) -> Outcome {
    enum Ended {
        Exited(io::Result<ExitStatus>),
        TimedOut,
        Disconnected,
        Shutdown,
    }
    let ended = tokio::select! {
        st = child.wait() => Ended::Exited(st),
        _ = tokio::time::sleep(timeout) => Ended::TimedOut,
        _ = tx.closed() => Ended::Disconnected,
        _ = shutdown.cancelled() => Ended::Shutdown,
    };
    let stragglers = kill_session(pid).await;
    let reap = |r: io::Result<ExitStatus>| match r {
        Ok(st) => Some(st),
        Err(e) => {
            tracing::warn!(pid, error = %e, "waiting for the child failed");
            None
        }
    };
    match ended {
        Ended::Exited(st) => {
            if stragglers > 0 {
                tracing::debug!(pid, stragglers, "killed processes left in the session");
            }
            Outcome::Exited(reap(st))
        }
        Ended::TimedOut => Outcome::TimedOut(reap(child.wait().await)),
        Ended::Disconnected => {
            let _ = child.wait().await;
            Outcome::Disconnected
        }
        Ended::Shutdown => Outcome::Shutdown(reap(child.wait().await)),
    }
}

/// `(exit_code, signal)` of a status.
pub fn status_parts(st: Option<ExitStatus>) -> (Option<i32>, Option<i32>) {
    match st {
        Some(st) => (st.code(), st.signal()),
        None => (None, None),
    }
}

/// Decodes a byte stream as UTF-8 chunk by chunk without splitting a multi-byte
/// character across chunks; invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Decodes what can be decoded; keeps an incomplete trailing character.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(bytes);
        let mut out = String::with_capacity(data.len());
        let mut input: &[u8] = &data;
        loop {
            match std::str::from_utf8(input) {
                Ok(s) => {
                    out.push_str(s);
                    input = &[];
                    break;
                }
                Err(e) => {
                    let (valid, rest) = input.split_at(e.valid_up_to());
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            input = &rest[n..];
                        }
                        None => {
                            input = rest; // incomplete character at the end
                            break;
                        }
                    }
                }
            }
        }
        self.pending = input.to_vec();
        out
    }

    /// Whatever is left (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

/// Streams a pipe as events of arbitrary-size chunks, as they arrive. Stops at EOF,
/// when the receiver is gone, or when `stop` fires while no data is waiting.
pub async fn pump_chunks<R: AsyncRead + Unpin>(
    mut reader: R,
    make: fn(String) -> Event,
    tx: mpsc::Sender<Event>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut dec = Utf8Decoder::default();
    loop {
        let n = tokio::select! {
            biased;
            r = reader.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = stop.cancelled() => break,
        };
        let s = dec.push(&buf[..n]);
        if !s.is_empty() && tx.send(make(s)).await.is_err() {
            return;
        }
    }
    let rest = dec.finish();
    if !rest.is_empty() {
        let _ = tx.send(make(rest)).await;
    }
}

/// One line read by [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line without its terminator (`\n` or `\r\n`).
    Text(Vec<u8>),
    /// A line longer than the cap was skipped; its length.
    TooLong(usize),
}

/// Reads newline-terminated lines with a length cap.
#[derive(Debug)]
pub struct LineReader<R> {
    inner: BufReader<R>,
    max: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub fn new(reader: R, max: usize) -> Self {
        LineReader {
            inner: BufReader::with_capacity(64 * 1024, reader),
            max,
        }
    }

    /// The next line; `None` at EOF.
    pub async fn next_line(&mut self) -> io::Result<Option<Line>> {
        let mut out = Vec::new();
        let mut total = 0usize;
        let mut overflow = false;
        loop {
            let avail = self.inner.fill_buf().await?;
            if avail.is_empty() {
                if total == 0 {
                    return Ok(None);
                }
                break;
            }
            let (chunk, used, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (&avail[..i], i + 1, true),
                None => (avail, avail.len(), false),
            };
            total += chunk.len();
            if !overflow {
                if out.len() + chunk.len() > self.max {
                    overflow = true;
                    out = Vec::new();
                } else {
                    out.extend_from_slice(chunk);
                }
            }
            self.inner.consume(used);
            if done {
                break;
            }
        }
        if overflow {
            return Ok(Some(Line::TooLong(total)));
        }
        if out.last() == Some(&b'\r') {
            out.pop();
        }
        Ok(Some(Line::Text(out)))
    }
}

/// The last lines of a stream, for error messages.
#[derive(Debug, Default)]
pub struct Tail {
    lines: VecDeque<String>,
}

impl Tail {
    const LINES: usize = 20;
    const LINE_CHARS: usize = 400;

    pub fn push(&mut self, line: &str) {
        let mut l: String = line.chars().take(Self::LINE_CHARS).collect();
        if l.len() < line.len() {
            l.push('…');
        }
        if self.lines.len() == Self::LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(l);
    }

    pub fn joined(&self) -> String {
        self.lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_never_splits_a_character() {
        let text = "aé€😀z";
        let bytes = text.as_bytes();
        for split in 0..bytes.len() {
            let mut d = Utf8Decoder::default();
            let mut got = d.push(&bytes[..split]);
            got.push_str(&d.push(&bytes[split..]));
            got.push_str(&d.finish());
            assert_eq!(got, text, "split at {split}");
        }
        let mut d = Utf8Decoder::default();
        assert_eq!(d.push(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(d.push(b"\xe2\x82"), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }

    #[test]
    fn parses_proc_stat() {
        let line = "1234 (we ir) d) S 1 1234 1234 0 -1 4194560 ...";
        assert_eq!(parse_stat(line), Some(('S', 1234, 1234)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[tokio::test]
    async fn line_reader_caps_lines() {
        let data: &[u8] = b"one\r\ntwo\nxxxxxxxxxxxx\nlast";
        let mut r = LineReader::new(data, 5);
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Text(b"one".to_vec()))
        );
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Text(b"two".to_vec()))
        );
        assert_eq!(r.next_line().await.unwrap(), Some(Line::TooLong(12)));
        assert_eq!(
            r.next_line().await.unwrap(),
            Some(Line::Text(b"last".to_vec()))
        );
        assert_eq!(r.next_line().await.unwrap(), None);
    }
}
