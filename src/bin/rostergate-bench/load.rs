//! A bounded, wrk-like load: N keep-alive connections send requests back to back for a
//! fixed time; every answer's latency is kept, so percentiles are exact.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::http1::Connection;

/// The path of request `i` on connection `c`.
pub type PathFn = Arc<dyn Fn(usize, u64) -> String + Send + Sync>;

/// What to send: where, the extra header lines, and which path each time.
pub struct Target {
    pub addr: SocketAddr,
    /// Header lines each ending in `\r\n` (e.g. the bearer token).
    pub headers: String,
    pub path: PathFn,
}

/// How hard and how long.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub connections: usize,
    pub duration: Duration,
}

/// Throughput and latency of one load run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoadResult {
    /// Answers received (any status).
    pub requests: u64,
    /// Answers that were not 200, plus requests that got no answer.
    pub errors: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Runs the load on the current thread's runtime and returns its measurements.
pub async fn run(target: &Target, load: Load) -> LoadResult {
    let started = Instant::now();
    let deadline = started + load.duration;
    let workers: Vec<_> = (0..load.connections)
        .map(|c| connection_loop(target, c, deadline))
        .collect();
    let per_connection = futures_util::future::join_all(workers).await;
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies_us = Vec::new();
    let mut errors = 0;
    for (lat, errs) in per_connection {
        latencies_us.extend(lat);
        errors += errs;
    }
    summarize(latencies_us, errors, seconds)
}

/// One connection's requests until the deadline: latencies in microseconds, error count.
async fn connection_loop(target: &Target, c: usize, deadline: Instant) -> (Vec<u32>, u64) {
    let mut conn = Connection::new(target.addr);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut i = 0;
    while Instant::now() < deadline {
        let path = (target.path)(c, i);
        i += 1;
        let sent = Instant::now();
        match conn.get(&path, &target.headers).await {
            Ok(response) => {
                let micros = sent.elapsed().as_micros();
                latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                if response.status != 200 {
                    errors += 1;
                }
            }
            Err(_) => errors += 1,
        }
    }
    (latencies, errors)
}

fn summarize(mut latencies_us: Vec<u32>, errors: u64, seconds: f64) -> LoadResult {
    latencies_us.sort_unstable();
    let requests = latencies_us.len() as u64;
    LoadResult {
        requests,
        errors,
        seconds,
        requests_per_sec: if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        },
        p50_ms: percentile_ms(&latencies_us, 50.0),
        p99_ms: percentile_ms(&latencies_us, 99.0),
        max_ms: latencies_us
            .last()
            .map_or(0.0, |&us| f64::from(us) / 1000.0),
    }
}

/// Nearest-rank percentile of sorted microsecond latencies, in milliseconds.
pub fn percentile_ms(sorted_us: &[u32], pct: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((pct / 100.0) * sorted_us.len() as f64).ceil() as usize;
    f64::from(sorted_us[rank.clamp(1, sorted_us.len()) - 1]) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1000).collect();
        let cases = [(50.0, 50.0), (99.0, 99.0), (100.0, 100.0), (0.0, 1.0)];
        for (pct, expected_ms) in cases {
            assert_eq!(percentile_ms(&sorted, pct), expected_ms, "p{pct}");
        }
        assert_eq!(percentile_ms(&[], 99.0), 0.0);
        assert_eq!(percentile_ms(&[7000], 50.0), 7.0);
    }

    #[test]
    fn summary_counts_answers_and_rate() {
        let result = summarize(vec![3000, 1000, 2000, 4000], 1, 2.0);
        assert_eq!(result.requests, 4);
        assert_eq!(result.errors, 1);
        assert_eq!(result.requests_per_sec, 2.0);
        assert_eq!(
            (result.p50_ms, result.p99_ms, result.max_ms),
            (2.0, 4.0, 4.0)
        );
    }

    #[tokio::test]
    async fn a_load_against_a_closed_port_counts_errors_not_answers() {
        // Bind then drop: nothing listens on that port afterwards.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let target = Target {
            addr,
            headers: String::new(),
            path: Arc::new(|_, _| "/".to_string()),
        };
        let load = Load {
            connections: 2,
            duration: Duration::from_millis(50),
        };
        let result = run(&target, load).await;
        assert_eq!(result.requests, 0);
        assert!(result.errors > 0);
    }
}
