//! Turns on `TCP_NODELAY` for the server's connections.
//!
//! dropshot binds its listener itself and sets no socket options, so small
//! SSE writes meet Nagle's algorithm and the client's delayed ACK: measured
//! at +44 ms to the first streamed delta. Linux copies `TCP_NODELAY` from a
//! listening socket to the sockets it accepts, so we find our listener by
//! its address and set the option on it once, at start-up.

use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, RawFd};

/// Sets `TCP_NODELAY` on the listening TCP socket bound to `addr`. Returns
/// whether one was found.
pub fn set_on_listener(addr: SocketAddr) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return false };
    for entry in dir.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        let Some(fd) =
            entry.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok())
        else {
            continue;
        };
        if !is_socket {
            continue;
        }
        // SAFETY: `fd` was listed as open in this process a moment ago and
        // is only borrowed for the calls below. If it was closed and reused
        // in between, the address check makes us touch only a TCP listener
        // bound to `addr`, and TCP_NODELAY is harmless on any TCP socket.
        #[allow(unsafe_code)]
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let sock = socket2::SockRef::from(&fd);
        let bound = sock.local_addr().ok().and_then(|a| a.as_socket());
        let listening = sock.is_listener().unwrap_or(false);
        if bound == Some(addr) && listening {
            return sock.set_tcp_nodelay(true).is_ok();
        }
    }
    false
}
