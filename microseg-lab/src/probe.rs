//! Probes, run on a thread that already entered the source namespace.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use socket2::{Domain, Protocol, Socket, Type};

use crate::{LabError, Outcome, Probe};

/// Shortest read timeout we set (zero would mean "block forever").
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Runs one probe from the calling thread's namespace.
pub(crate) fn run(to: IpAddr, probe: Probe, timeout: Duration) -> Result<Outcome, LabError> {
    let result = match probe {
        Probe::Tcp(port) => tcp(SocketAddr::new(to, port), timeout),
        Probe::Udp(port) => udp(SocketAddr::new(to, port), timeout),
        Probe::Icmp => icmp(to, timeout),
    };
    result.map_err(|e| LabError::io(format!("probe {probe:?} to {to}"), e))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Maps a socket error to an outcome: an answer that says "no" is `Refused`,
/// a local drop (EPERM from our own output hook) or no answer is `Timeout`.
fn classify(e: io::Error) -> io::Result<Outcome> {
    if is_timeout(&e) {
        return Ok(Outcome::Timeout);
    }
    match e.raw_os_error().map(Errno::from_raw) {
        Some(
            Errno::ECONNREFUSED
            | Errno::EHOSTUNREACH
            | Errno::ENETUNREACH
            | Errno::EACCES
            | Errno::ECONNRESET,
        ) => Ok(Outcome::Refused),
        Some(Errno::EPERM | Errno::ETIMEDOUT) => Ok(Outcome::Timeout),
        _ => Err(e),
    }
}

fn tcp(to: SocketAddr, timeout: Duration) -> io::Result<Outcome> {
    match TcpStream::connect_timeout(&to, timeout) {
        Ok(_) => Ok(Outcome::Open),
        Err(e) => classify(e),
    }
}

fn unspecified(to: &SocketAddr) -> SocketAddr {
    let ip = match to {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, 0)
}

/// Sends a datagram (again at half time) on a connected socket and waits for
/// the echo; ICMP unreachable shows up as an error on the connected socket.
fn udp(to: SocketAddr, timeout: Duration) -> io::Result<Outcome> {
    const PAYLOAD: &[u8] = b"microseg-lab udp probe";
    let socket = UdpSocket::bind(unspecified(&to))?;
    socket.connect(to)?;
    let start = Instant::now();
    let deadline = start + timeout;
    let resend_at = start + timeout / 2;
    let mut sent = 0;
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(Outcome::Timeout);
        }
        if sent == 0 || (sent == 1 && now >= resend_at) {
            if let Err(e) = socket.send(PAYLOAD) {
                return classify(e);
            }
            sent += 1;
        }
        let until = if sent == 1 {
            resend_at.min(deadline)
        } else {
            deadline
        };
        socket.set_read_timeout(Some(until.saturating_duration_since(now).max(MIN_WAIT)))?;
        match socket.recv(&mut buf) {
            Ok(_) => return Ok(Outcome::Open),
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return classify(e),
        }
    }
}

/// Echo identifiers, distinct across concurrent probes of this process.
fn next_ident() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Truncation intended: the pid only spreads identifiers between processes.
    let base = (std::process::id() as u16).wrapping_mul(7919);
    base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The loop above folded `sum` into 16 bits.
    !(sum as u16)
}

/// An echo request; the kernel fills in the ICMPv6 checksum itself.
fn echo_request(v6: bool, ident: u16, seq: u16) -> Vec<u8> {
    let mut packet = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(b"microseg-lab icmp probe");
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// Reads a received packet: our echo reply, an unreachable about our request, or noise.
/// IPv4 raw sockets deliver the IP header, IPv6 ones do not.
fn classify_packet(v6: bool, packet: &[u8], ident: u16, seq: u16) -> Option<Outcome> {
    let icmp = if v6 {
        packet
    } else {
        packet.get(usize::from(packet.first()? & 0x0f) * 4..)?
    };
    let (reply, unreachable) = if v6 { (129, 1) } else { (0, 3) };
    let kind = *icmp.first()?;
    if kind == reply {
        let ours = icmp.get(4..6)? == ident.to_be_bytes() && icmp.get(6..8)? == seq.to_be_bytes();
        return ours.then_some(Outcome::Open);
    }
    if kind == unreachable {
        let inner = icmp.get(8..)?;
        let inner_icmp = if v6 {
            (*inner.get(6)? == 58).then_some(())?;
            inner.get(40..)?
        } else {
            (*inner.get(9)? == 1).then_some(())?;
            inner.get(usize::from(inner.first()? & 0x0f) * 4..)?
        };
        let ours = *inner_icmp.first()? == if v6 { 128 } else { 8 }
            && inner_icmp.get(4..6)? == ident.to_be_bytes();
        return ours.then_some(Outcome::Refused);
    }
    None
}

/// ICMP echo over a raw ICMP/ICMPv6 socket (needs CAP_NET_RAW, which root has).
fn icmp(to: IpAddr, timeout: Duration) -> io::Result<Outcome> {
    let v6 = to.is_ipv6();
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let socket = Socket::new(domain, Type::RAW, Some(proto))?;
    // Connected: the kernel only hands us packets from `to`.
    socket.connect(&SocketAddr::new(to, 0).into())?;
    let (ident, seq) = (next_ident(), 1);
    if let Err(e) = socket.send(&echo_request(v6, ident, seq)) {
        return classify(e);
    }
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 2048];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(Outcome::Timeout);
        }
        socket.set_read_timeout(Some((deadline - now).max(MIN_WAIT)))?;
        match (&socket).read(&mut buf) {
            Ok(n) => {
                if let Some(outcome) = classify_packet(v6, &buf[..n], ident, seq) {
                    return Ok(outcome);
                }
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return classify(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_request_verifies() {
        let packet = echo_request(false, 0x1234, 1);
        assert_eq!(checksum(&packet), 0);
        assert_eq!(checksum(&[0x45, 0x00, 0x00]), !0x4500);
    }

    #[test]
    fn packets_are_classified() {
        let mut reply = vec![0x45; 20];
        reply.extend_from_slice(&[0, 0, 0, 0, 0x12, 0x34, 0, 1]);
        assert_eq!(
            classify_packet(false, &reply, 0x1234, 1),
            Some(Outcome::Open)
        );
        assert_eq!(classify_packet(false, &reply, 0x1235, 1), None);
        let mut unreach = vec![0x45; 20];
        unreach.extend_from_slice(&[3, 13, 0, 0, 0, 0, 0, 0]);
        let mut inner = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1];
        inner.resize(20, 0);
        unreach.extend_from_slice(&inner);
        unreach.extend_from_slice(&echo_request(false, 0x1234, 1));
        assert_eq!(
            classify_packet(false, &unreach, 0x1234, 1),
            Some(Outcome::Refused)
        );
        let mut v6 = vec![1, 4, 0, 0, 0, 0, 0, 0];
        let mut inner6 = vec![0x60, 0, 0, 0, 0, 0, 58, 64];
        inner6.resize(40, 0);
        v6.extend_from_slice(&inner6);
        v6.extend_from_slice(&echo_request(true, 7, 1));
        assert_eq!(classify_packet(true, &v6, 7, 1), Some(Outcome::Refused));
        assert_eq!(
            classify_packet(true, &[129, 0, 0, 0, 0, 7, 0, 1], 7, 1),
            Some(Outcome::Open)
        );
        assert_eq!(classify_packet(true, &[135, 0, 0, 0], 7, 1), None);
        assert_eq!(classify_packet(false, &[], 7, 1), None);
    }
}
