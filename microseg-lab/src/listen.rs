//! Listeners: TCP accept-and-echo, UDP echo, bound inside a host namespace.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::{LabError, Service};

/// How often blocked listener threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// A bound socket, not yet served.
pub(crate) enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

fn socket(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// Binds `service` on `0.0.0.0` and `[::]` (v6-only) in the calling thread's namespace.
pub(crate) fn bind(service: Service) -> Result<Vec<Bound>, LabError> {
    let wildcards = [
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ];
    wildcards
        .into_iter()
        .map(|ip| {
            let bound = match service {
                Service::Tcp(port) => {
                    let s = socket(SocketAddr::new(ip, port), Type::STREAM, Protocol::TCP)?;
                    s.listen(128)?;
                    s.set_nonblocking(true)?;
                    Bound::Tcp(s.into())
                }
                Service::Udp(port) => {
                    let s = socket(SocketAddr::new(ip, port), Type::DGRAM, Protocol::UDP)?;
                    s.set_read_timeout(Some(POLL))?;
                    Bound::Udp(s.into())
                }
            };
            Ok(bound)
        })
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| LabError::io(format!("cannot listen on {service:?}"), e))
}

/// Serves a bound socket on a new thread until `stop` is set.
pub(crate) fn serve(bound: Bound, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>, LabError> {
    let builder = thread::Builder::new().name("msl-listen".into());
    match bound {
        Bound::Tcp(listener) => builder.spawn(move || accept_loop(&listener, &stop)),
        Bound::Udp(socket) => builder.spawn(move || udp_echo(&socket, &stop)),
    }
    .map_err(|e| LabError::io("cannot spawn a listener thread", e))
}

fn accept_loop(listener: &TcpListener, stop: &Arc<AtomicBool>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let stop = Arc::clone(stop);
                if let Ok(handle) = thread::Builder::new()
                    .name("msl-echo".into())
                    .spawn(move || tcp_echo(stream, &stop))
                {
                    connections.push(handle);
                }
            }
            Err(_) => thread::sleep(POLL),
        }
        connections.retain(|h| !h.is_finished());
    }
    for handle in connections {
        let _ = handle.join();
    }
}

fn tcp_echo(mut stream: TcpStream, stop: &AtomicBool) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn udp_echo(socket: &UdpSocket, stop: &AtomicBool) {
    let mut buf = [0u8; 65536];
    while !stop.load(Ordering::SeqCst) {
        match socket.recv_from(&mut buf) {
            Ok((n, peer)) => {
                let _ = socket.send_to(&buf[..n], peer);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => thread::sleep(POLL),
        }
    }
}
