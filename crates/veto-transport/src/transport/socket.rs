//! UDP socket buffers sized for a long, fast path.

use std::io;
use std::os::fd::AsFd;

/// The receive and send buffer asked for each UDP socket: 4 MiB. The kernel's
/// default (about 208 KiB on Linux) holds a few milliseconds of a backlog
/// stream; when the reading process is briefly off the CPU, the rest of a
/// congestion window's burst is dropped, and QUIC slows down for a loss the
/// path never had.
pub const UDP_BUFFER_BYTES: usize = 4 << 20;

/// The buffer sizes a socket ended up with, in bytes, as the kernel reports
/// them (Linux reports twice what it grants, for its own bookkeeping).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpBuffers {
    /// Receive buffer.
    pub recv: usize,
    /// Send buffer.
    pub send: usize,
}

/// Asks for [`UDP_BUFFER_BYTES`] of receive and send buffer on `socket`. The
/// kernel caps the request at `net.core.rmem_max` / `wmem_max`; a smaller
/// grant is not an error, and is logged once so that an operator can raise
/// those limits.
pub fn widen_udp_buffers(socket: &impl AsFd) -> io::Result<UdpBuffers> {
    let sock = socket2::SockRef::from(socket);
    sock.set_recv_buffer_size(UDP_BUFFER_BYTES)?;
    sock.set_send_buffer_size(UDP_BUFFER_BYTES)?;
    let got = UdpBuffers {
        recv: sock.recv_buffer_size()?,
        send: sock.send_buffer_size()?,
    };
    if got.recv < UDP_BUFFER_BYTES || got.send < UDP_BUFFER_BYTES {
        tracing::info!(
            recv = got.recv,
            send = got.send,
            wanted = UDP_BUFFER_BYTES,
            "UDP buffers smaller than asked: raise net.core.rmem_max and net.core.wmem_max \
             for long, fast paths"
        );
    }
    Ok(got)
}
