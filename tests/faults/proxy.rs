//! A fault-injecting TCP proxy in front of each node's peer port. Node `i` connects to its peers
//! from 127.0.0.(i+1), so the proxy knows which link a connection belongs to, and the test can
//! cut any link in one direction or both.
//!
//! A cut link black-holes bytes, as a lost route does: nothing is refused, requests just get no
//! answer. A connection that lost bytes never delivers later ones (TCP never skips); once the
//! link heals it is closed, and the peer reconnects. A link cut with resets instead answers as a
//! rebooted peer or a firewall's reject does: every connection across it is reset (RST) at its
//! next byte, and new ones are reset as soon as they are accepted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How a cut link fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Bytes vanish (a lost route): no answer, no error.
    BlackHole,
    /// Connections are reset (RST): an error at once.
    Reset,
}

/// Which directed links (from, to) are cut, and how; nodes are 0-based.
#[derive(Clone, Default)]
pub struct Links(Arc<Mutex<Vec<(usize, usize, Cut)>>>);

impl Links {
    pub fn cut(&self, from: usize, to: usize) {
        self.cut_with(from, to, Cut::BlackHole);
    }

    pub fn cut_with(&self, from: usize, to: usize, how: Cut) {
        let mut cut = self.0.lock().unwrap();
        cut.retain(|(f, t, _)| (*f, *t) != (from, to));
        cut.push((from, to, how));
    }

    /// Cut both directions between `node` and every other of `n` nodes.
    pub fn isolate(&self, node: usize, n: usize) {
        self.isolate_with(node, n, Cut::BlackHole);
    }

    pub fn isolate_with(&self, node: usize, n: usize, how: Cut) {
        for other in (0..n).filter(|o| *o != node) {
            self.cut_with(node, other, how);
            self.cut_with(other, node, how);
        }
    }

    pub fn heal(&self) {
        self.0.lock().unwrap().clear();
    }

    pub fn is_cut(&self, from: Option<usize>, to: usize) -> Option<Cut> {
        let from = from?;
        self.0.lock().unwrap().iter().find(|(f, t, _)| (*f, *t) == (from, to)).map(|(_, _, how)| *how)
    }
}

/// The loopback address node `i` lives on.
pub fn node_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8 + 1))
}

fn node_of(ip: IpAddr) -> Option<usize> {
    match ip {
        IpAddr::V4(v4) if v4.octets()[..3] == [127, 0, 0] && v4.octets()[3] >= 1 => Some(v4.octets()[3] as usize - 1),
        _ => None,
    }
}

/// A listener for node `i`'s proxy on its own address and a port the system chose: bound
/// before the node starts, so no connection the nodes make can take the port first (a port
/// picked free and bound later was, once: "Address already in use").
pub async fn bind(i: usize) -> TcpListener {
    TcpListener::bind(SocketAddr::new(node_ip(i), 0)).await.expect("bind proxy")
}

/// Accept on `listener` and relay to `upstream` (node `to`) subject to `links`.
pub fn start(listener: TcpListener, upstream: SocketAddr, to: usize, links: Links) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((downstream, peer)) = listener.accept().await {
            let from = node_of(peer.ip()).filter(|f| *f != to);
            if links.is_cut(from, to) == Some(Cut::Reset) {
                reset(&downstream);
                continue;
            }
            let links = links.clone();
            tokio::spawn(async move {
                let Ok(upstream) = TcpStream::connect(upstream).await else { return };
                relay(downstream, upstream, from, to, links).await;
            });
        }
    })
}

async fn relay(downstream: TcpStream, upstream: TcpStream, from: Option<usize>, to: usize, links: Links) {
    let _ = downstream.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut down_read, mut down_write) = downstream.into_split();
    let (mut up_read, mut up_write) = upstream.into_split();
    let poisoned = Arc::new(AtomicBool::new(false));
    let requests = pump(&mut down_read, &mut up_write, &links, from, Some(to), &poisoned);
    let answers = pump(&mut up_read, &mut down_write, &links, Some(to), from, &poisoned);
    // Either direction ending (EOF, error, or a healed poisoned stream) closes the connection;
    // a link cut with resets resets both sides.
    let ended = tokio::select! {
        ended = requests => ended,
        ended = answers => ended,
    };
    if ended == Ended::Reset {
        reset(down_read.as_ref());
        reset(up_read.as_ref());
    }
}

/// Close with RST rather than FIN once the socket is dropped.
fn reset(stream: &TcpStream) {
    #[allow(deprecated)] // tokio deprecates set_linger for its blocking close; a reset never blocks.
    let _ = stream.set_linger(Some(std::time::Duration::ZERO));
}

#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Closed,
    Reset,
}

async fn pump<R, W>(
    read: &mut R,
    write: &mut W,
    links: &Links,
    from: Option<usize>,
    to: Option<usize>,
    poisoned: &AtomicBool,
) -> Ended
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match read.read(&mut buf).await {
            Ok(0) | Err(_) => return Ended::Closed,
            Ok(n) => n,
        };
        match to.and_then(|to| links.is_cut(from, to)) {
            Some(Cut::Reset) => return Ended::Reset,
            Some(Cut::BlackHole) => {
                poisoned.store(true, Ordering::SeqCst);
                continue;
            }
            None => {}
        }
        if poisoned.load(Ordering::SeqCst) {
            return Ended::Closed;
        }
        if write.write_all(&buf[..n]).await.is_err() {
            return Ended::Closed;
        }
    }
}
