//! A fault-injecting TCP proxy in front of each node's peer port. Node `i` connects to its peers
//! from 127.0.0.(i+1), so the proxy knows which link a connection belongs to, and the test can
//! cut any link in one direction or both.
//!
//! A cut link black-holes bytes, as a lost route does: nothing is refused, requests just get no
//! answer. A connection that lost bytes never delivers later ones (TCP never skips); once the
//! link heals it is closed, and the peer reconnects.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Which directed links (from, to) are cut; nodes are 0-based.
#[derive(Clone, Default)]
pub struct Links(Arc<Mutex<Vec<(usize, usize)>>>);

impl Links {
    pub fn cut(&self, from: usize, to: usize) {
        let mut cut = self.0.lock().unwrap();
        if !cut.contains(&(from, to)) {
            cut.push((from, to));
        }
    }

    /// Cut both directions between `node` and every other of `n` nodes.
    pub fn isolate(&self, node: usize, n: usize) {
        for other in (0..n).filter(|o| *o != node) {
            self.cut(node, other);
            self.cut(other, node);
        }
    }

    pub fn heal(&self) {
        self.0.lock().unwrap().clear();
    }

    pub fn is_cut(&self, from: Option<usize>, to: usize) -> bool {
        from.is_some_and(|from| self.0.lock().unwrap().contains(&(from, to)))
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
    // Either direction ending (EOF, error, or a healed poisoned stream) closes the connection.
    tokio::select! {
        _ = requests => {}
        _ = answers => {}
    }
}

async fn pump<R, W>(
    read: &mut R,
    write: &mut W,
    links: &Links,
    from: Option<usize>,
    to: Option<usize>,
    poisoned: &AtomicBool,
) where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match read.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let cut = to.is_some_and(|to| links.is_cut(from, to));
        if cut {
            poisoned.store(true, Ordering::SeqCst);
            continue;
        }
        if poisoned.load(Ordering::SeqCst) {
            return;
        }
        if write.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
