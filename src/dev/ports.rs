//! Ports for servers that tests and the load generator start: free, and outside the kernel's
//! ephemeral range.
//!
//! Asking the kernel for a free port (binding port 0) and closing it hands out a port of the
//! ephemeral range, which the kernel may give to any outgoing connection before the server
//! binds it. Worse, a client that polls such a port while nothing listens yet can connect to
//! itself (TCP simultaneous open): it then seems to be answered, and it holds the port the server
//! is about to bind (seen: a core failing with "Address already in use" after its sibling core
//! had started serving). A port below the ephemeral range is never picked by the kernel.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where the kernel's ephemeral ports begin when it does not say (Linux's default).
const DEFAULT_EPHEMERAL_START: u16 = 32768;
/// The lowest port handed out (above the well-known and most registered service ports).
const LOWEST: u16 = 20000;

/// `n` distinct ports at `ip`, each free when checked and below the ephemeral range.
pub fn unused_ports(ip: IpAddr, n: usize) -> std::io::Result<Vec<SocketAddr>> {
    let end = ephemeral_start();
    if end <= LOWEST + 100 {
        // An unusual range: fall back to the kernel's choice.
        return (0..n).map(|_| TcpListener::bind((ip, 0))?.local_addr()).collect();
    }
    let span = u32::from(end - LOWEST);
    // Distinct per process and per call: a pid-seeded walk through the range.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(2_654_435_761);
    let mut held = Vec::with_capacity(n);
    let mut tries = 0;
    while held.len() < n {
        tries += 1;
        if tries > 10_000 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "no free port below the ephemeral range",
            ));
        }
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOWEST + (seed.wrapping_add(step.wrapping_mul(7919)) % span) as u16;
        // Held until all are chosen, so that one call never returns a port twice.
        if let Ok(listener) = TcpListener::bind((ip, port)) {
            held.push(listener);
        }
    }
    held.iter().map(TcpListener::local_addr).collect()
}

/// One port at `ip`, free when checked and below the ephemeral range.
pub fn unused_port(ip: IpAddr) -> std::io::Result<u16> {
    Ok(unused_ports(ip, 1)?[0].port())
}

fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        let ports = unused_ports(ip, 20).unwrap();
        let mut numbers: Vec<u16> = ports.iter().map(|a| a.port()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), 20);
        let end = ephemeral_start();
        assert!(numbers.iter().all(|p| (LOWEST..end).contains(p)), "{numbers:?} not in {LOWEST}..{end}");
        for a in &ports {
            TcpListener::bind(a).unwrap();
        }
    }
}
