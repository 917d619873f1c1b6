//! What the generator reads about the server at the edges of each measured window: its CPU
//! (from /proc) and the CPU its signing threads spent inside C_Sign (from segl's `/metrics`).
//!
//! SoftHSM signs inside segl's process, so segl's CPU includes the signatures. Subtracting the
//! C_Sign CPU segl itself measured in the same window gives segl's own CPU; a C_Sign measured
//! on its own while segl idles costs noticeably less than one inside a busy server, and
//! subtracting that would overstate segl's share.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::procfs;

/// segl's counter of CPU seconds its signing threads spent in C_SignInit + C_Sign, per core.
pub const HSM_CPU_METRIC: &str = "segl_hsm_sign_cpu_seconds_total";
/// segl's counter of signatures made, per core.
pub const HSM_SIGNATURES_METRIC: &str = "segl_hsm_signatures_total";

/// A scrape slower than this is not used: the CPU reading taken after it would no longer mark
/// the same instant as the counters.
const MAX_SCRAPE: Duration = Duration::from_millis(250);
/// How long a scrape may take at all.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why `/metrics` gave no HSM counters.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// Connecting, writing or reading failed.
    #[error("GET http://{addr}/metrics: {source}")]
    Io {
        /// The admin listener.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The answer was not a 200 with a body.
    #[error("GET http://{addr}/metrics: {reason}")]
    Response {
        /// The admin listener.
        addr: SocketAddr,
        /// What was wrong.
        reason: String,
    },
    /// The server does not publish the counter (a segl from before it existed).
    #[error("http://{addr}/metrics has no {metric}")]
    Missing {
        /// The admin listener.
        addr: SocketAddr,
        /// The counter looked for.
        metric: &'static str,
    },
}

/// The HSM counters of all cores together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HsmCounters {
    /// CPU seconds inside C_SignInit + C_Sign.
    pub cpu_secs: f64,
    /// Signatures made.
    pub signatures: f64,
}

/// Sums the HSM counters over cores from Prometheus text.
pub fn parse_hsm_counters(text: &str) -> (Option<f64>, Option<f64>) {
    let (mut cpu, mut signatures) = (None, None);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        for (metric, sum) in [(HSM_CPU_METRIC, &mut cpu), (HSM_SIGNATURES_METRIC, &mut signatures)] {
            if let Some(v) = sample_value(line, metric) {
                *sum = Some(sum.unwrap_or(0.0) + v);
            }
        }
    }
    (cpu, signatures)
}

/// The value of `line` when it is a sample of `metric` (with or without labels).
fn sample_value(line: &str, metric: &str) -> Option<f64> {
    let rest = line.strip_prefix(metric)?;
    let rest = match rest.strip_prefix('{') {
        // Label values are core numbers here; no `}` inside quotes to worry about.
        Some(labels) => &labels[labels.find('}')? + 1..],
        None if rest.starts_with([' ', '\t']) => rest,
        None => return None,
    };
    rest.split_whitespace().next()?.parse().ok()
}

/// `GET /metrics` on segl's admin listener, and its HSM counters.
pub fn scrape(addr: SocketAddr) -> Result<HsmCounters, ScrapeError> {
    let io = |source| ScrapeError::Io { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT).map_err(io)?;
    s.set_read_timeout(Some(SCRAPE_TIMEOUT)).map_err(io)?;
    s.set_write_timeout(Some(SCRAPE_TIMEOUT)).map_err(io)?;
    s.write_all(format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(io)?;
    let bad = |reason: String| ScrapeError::Response { addr, reason };
    let (status, body) =
        read_response(&mut s).map_err(io)?.ok_or_else(|| bad("no complete response".into()))?;
    if status != 200 {
        return Err(bad(format!("HTTP {status}")));
    }
    let body = String::from_utf8_lossy(&body);
    match parse_hsm_counters(&body) {
        (Some(cpu_secs), Some(signatures)) => Ok(HsmCounters { cpu_secs, signatures }),
        (None, _) => Err(ScrapeError::Missing { addr, metric: HSM_CPU_METRIC }),
        (_, None) => Err(ScrapeError::Missing { addr, metric: HSM_SIGNATURES_METRIC }),
    }
}

/// Status and body of one HTTP/1.1 response framed by Content-Length (or by the end of the
/// stream), without waiting for the server to close a kept-alive connection.
fn read_response(s: &mut TcpStream) -> std::io::Result<Option<(u16, Vec<u8>)>> {
    let mut raw = Vec::with_capacity(64 * 1024);
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf)?;
        raw.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(head_len)) = response.parse(&raw) else {
            if n == 0 {
                return Ok(None);
            }
            continue;
        };
        let length = response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok());
        let status = response.code.unwrap_or(0);
        let complete = match length {
            Some(len) => raw.len() >= head_len + len,
            None => n == 0,
        };
        if complete {
            let end = length.map_or(raw.len(), |len| head_len + len);
            return Ok(Some((status, raw[head_len..end].to_vec())));
        }
        if n == 0 {
            return Ok(None);
        }
    }
}

/// The server to watch: its process (for CPU) and its admin listener (for HSM counters).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerProbe {
    /// Process id, when the server runs on this machine.
    pub pid: Option<u32>,
    /// segl's admin listener, serving `/metrics`.
    pub metrics: Option<SocketAddr>,
}

/// One reading of the server, at the edge of a window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerSample {
    /// On-CPU time of all its threads, ns (schedstat).
    pub cpu_ns: Option<u64>,
    /// User and system time, ns (`/proc/<pid>/stat`).
    pub user_system_ns: Option<(u64, u64)>,
    /// Its HSM counters.
    pub hsm: Option<HsmCounters>,
}

impl ServerProbe {
    /// A server known by its process id only.
    pub fn pid(pid: Option<u32>) -> Self {
        ServerProbe { pid, metrics: None }
    }

    /// Reads the server now. The CPU is read again right after a successful scrape so that
    /// both describe the same instant; a scrape that fails or is slow (segl's admin listener
    /// shares core 0 with requests) is dropped, and the reading before it stands.
    pub fn sample(&self) -> ServerSample {
        let before = self.cpu();
        let Some(addr) = self.metrics else { return before };
        let started = Instant::now();
        match scrape(addr) {
            Ok(hsm) if started.elapsed() <= MAX_SCRAPE => ServerSample { hsm: Some(hsm), ..self.cpu() },
            Ok(_) => {
                tracing::debug!("/metrics took {:?}; this window's HSM CPU is not used", started.elapsed());
                before
            }
            Err(e) => {
                tracing::debug!("{e}");
                before
            }
        }
    }

    fn cpu(&self) -> ServerSample {
        ServerSample {
            cpu_ns: self.pid.and_then(procfs::process_cpu_ns),
            user_system_ns: self.pid.and_then(procfs::process_user_system_ns),
            hsm: None,
        }
    }
}

/// What happened between two readings.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ServerDelta {
    /// On-CPU time, ns.
    pub cpu_ns: Option<u64>,
    /// User time, ns.
    pub user_ns: Option<u64>,
    /// System time, ns.
    pub system_ns: Option<u64>,
    /// CPU inside C_Sign, ns.
    pub hsm_cpu_ns: Option<u64>,
    /// Signatures made.
    pub hsm_signatures: Option<u64>,
}

impl ServerDelta {
    /// From reading `a` to reading `b`.
    pub fn between(a: &ServerSample, b: &ServerSample) -> Self {
        let sub = |x: Option<u64>, y: Option<u64>| Some(y?.saturating_sub(x?));
        let (ua, sa) = a.user_system_ns.unzip();
        let (ub, sb) = b.user_system_ns.unzip();
        let hsm = a.hsm.zip(b.hsm);
        // A counter that went backwards means the server restarted: nothing to compare.
        let hsm = hsm.filter(|(x, y)| y.cpu_secs >= x.cpu_secs && y.signatures >= x.signatures);
        ServerDelta {
            cpu_ns: sub(a.cpu_ns, b.cpu_ns),
            user_ns: sub(ua, ub),
            system_ns: sub(sa, sb),
            hsm_cpu_ns: hsm.map(|(x, y)| ((y.cpu_secs - x.cpu_secs) * 1e9).round() as u64),
            hsm_signatures: hsm.map(|(x, y)| (y.signatures - x.signatures).round() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsm_counters_are_summed_over_cores() {
        let text = "# TYPE segl_hsm_signatures_total counter\n\
                    segl_hsm_signatures_total{core=\"0\"} 1200\n\
                    segl_hsm_signatures_total{core=\"1\"} 800\n\
                    segl_hsm_signatures_total_other{core=\"1\"} 5\n\
                    # TYPE segl_hsm_sign_cpu_seconds_total gauge\n\
                    segl_hsm_sign_cpu_seconds_total{core=\"0\"} 1.5\n\
                    segl_hsm_sign_cpu_seconds_total{core=\"1\"} 0.75\n\
                    segl_hsm_sign_seconds_total{core=\"1\"} 9\n";
        assert_eq!(parse_hsm_counters(text), (Some(2.25), Some(2000.0)));
        assert_eq!(parse_hsm_counters("segl_hsm_signatures_total 3\n"), (None, Some(3.0)));
        assert_eq!(parse_hsm_counters("segl_requests_total{x=\"y\"} 3\n"), (None, None));
    }

    #[test]
    fn deltas_need_both_readings_and_a_counter_that_did_not_go_back() {
        let at = |cpu: u64, hsm: Option<(f64, f64)>| ServerSample {
            cpu_ns: Some(cpu),
            user_system_ns: Some((cpu * 3 / 4, cpu / 4)),
            hsm: hsm.map(|(c, s)| HsmCounters { cpu_secs: c, signatures: s }),
        };
        let d = ServerDelta::between(&at(1_000, Some((1.0, 100.0))), &at(5_000, Some((1.25, 300.0))));
        assert_eq!(d.cpu_ns, Some(4_000));
        assert_eq!((d.user_ns, d.system_ns), (Some(3_000), Some(1_000)));
        assert_eq!((d.hsm_cpu_ns, d.hsm_signatures), (Some(250_000_000), Some(200)));
        let d = ServerDelta::between(&at(1_000, None), &at(5_000, Some((1.25, 300.0))));
        assert_eq!((d.cpu_ns, d.hsm_cpu_ns), (Some(4_000), None));
        let d = ServerDelta::between(&at(1_000, Some((3.0, 400.0))), &at(5_000, Some((1.25, 300.0))));
        assert_eq!(d.hsm_cpu_ns, None);
    }

    #[test]
    fn a_server_without_the_counter_is_reported_missing() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for body in ["segl_hsm_signatures_total{core=\"0\"} 4\n", "segl_hsm_signatures_total{core=\"0\"} 4\nsegl_hsm_sign_cpu_seconds_total{core=\"0\"} 0.004\n"] {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).unwrap();
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                s.write_all(head.as_bytes()).unwrap();
                s.write_all(body.as_bytes()).unwrap();
            }
        });
        assert!(matches!(scrape(addr), Err(ScrapeError::Missing { metric: HSM_CPU_METRIC, .. })));
        assert_eq!(scrape(addr).unwrap(), HsmCounters { cpu_secs: 0.004, signatures: 4.0 });
        let refused = crate::servers::free_loopback().unwrap();
        assert!(matches!(scrape(refused), Err(ScrapeError::Io { .. })));
    }
}
