//! Running a child process to completion while sampling its peak memory from `/proc`.
//!
//! The kernel keeps a process's high-water RSS in `/proc/<pid>/status` (`VmHWM`) only while
//! the process lives, so a watcher samples it until the child exits; the value never goes
//! down, so the last sample is the peak up to at most one sampling interval before exit.

use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Bytes of child stderr kept: for error messages, and the importer's phase log lines.
pub const STDERR_TAIL_BYTES: usize = 16 * 1024;

/// How often the child's `VmHWM` is read.
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// What a finished child process did.
#[derive(Debug)]
pub struct ChildRun {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// Last `STDERR_TAIL_BYTES` of stderr, lossily decoded.
    pub stderr_tail: String,
    /// From just before spawn until the child was reaped.
    pub seconds: f64,
    /// The child's own peak resident set (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
}

/// Spawns `cmd` with piped stdio, feeds `stdin`, and waits for it while sampling its peak
/// RSS. Pipes are drained on threads so a chatty child cannot block on a full pipe.
pub fn run_child(cmd: &mut Command, stdin: Option<Vec<u8>>) -> io::Result<ChildRun> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let feeder = child.stdin.take().map(|mut pipe| {
        let data = stdin.unwrap_or_default();
        // A child that exits without reading all input is not our error to report.
        std::thread::spawn(move || drop(pipe.write_all(&data)))
    });
    let stdout = child.stdout.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    });
    let stderr = child
        .stderr
        .take()
        .map(|pipe| std::thread::spawn(move || read_tail(pipe, STDERR_TAIL_BYTES)));
    let (status, peak_rss_kib) = wait_sampling_peak(&mut child)?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    let stdout = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    let stderr_tail = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    Ok(ChildRun {
        status,
        stdout,
        stderr_tail,
        seconds,
        peak_rss_kib,
    })
}

/// Polls the child until it exits, keeping the largest `VmHWM` seen. `try_wait` reaps the
/// child, after which its `/proc` entry is gone, so sampling always happens before it.
fn wait_sampling_peak(child: &mut Child) -> io::Result<(ExitStatus, u64)> {
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            peak = peak.max(vm_hwm_kib(&text).unwrap_or(0));
        }
        if let Some(status) = child.try_wait()? {
            return Ok((status, peak));
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// The `VmHWM:   1234 kB` line of a `/proc/<pid>/status` text, in KiB.
pub fn vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reads `pipe` to the end keeping only the last `limit` bytes.
pub fn read_tail(mut pipe: impl Read, limit: usize) -> String {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => kept.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        if kept.len() > 2 * limit {
            kept.drain(..kept.len() - limit);
        }
    }
    let start = kept.len().saturating_sub(limit);
    String::from_utf8_lossy(&kept[start..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_child_feeds_stdin_and_captures_output_status_and_peak_rss() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "cat; echo oops >&2; exit 3"]);
        let run = run_child(&mut cmd, Some(b"hello".to_vec())).unwrap();
        assert_eq!(run.stdout, b"hello");
        assert_eq!(run.stderr_tail.trim(), "oops");
        assert_eq!(run.status.code(), Some(3));
        assert!(run.seconds > 0.0);
    }

    #[test]
    fn peak_rss_is_the_childs_own() {
        // The shell holds a 64 MB string and lives on a moment, as an importer does after
        // its peak; this test process never holds such a string.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo ${#x}; sleep 0.2",
        ]);
        let run = run_child(&mut cmd, None).unwrap();
        assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "64000000");
        assert!(run.peak_rss_kib > 60_000, "{} KiB", run.peak_rss_kib);
    }

    #[test]
    fn vm_hwm_is_read_from_the_status_text() {
        let cases = [
            (
                "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n",
                Some(1234),
            ),
            ("Name:\tkthreadd\nState:\tS\n", None),
            ("VmHWM:\tlots kB\n", None),
        ];
        for (text, expected) in cases {
            assert_eq!(vm_hwm_kib(text), expected, "{text:?}");
        }
    }

    #[test]
    fn stderr_tail_keeps_only_the_last_bytes() {
        let input: Vec<u8> = (0..20_000).map(|i| b'a' + (i % 26) as u8).collect();
        let tail = read_tail(&input[..], 100);
        assert_eq!(tail.as_bytes(), &input[input.len() - 100..]);
    }
}
