//! Streaming a response body produced by blocking code (a redb read transaction) without
//! holding it in memory: the producer writes into a bounded channel of 64 KiB chunks.

use std::io::Write;

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the producer and the client: bounds memory per download.
const CHUNKS_IN_FLIGHT: usize = 16;

/// A `Write` that sends what it is given to the response body. Fails once the client is gone,
/// which stops the producer.
pub struct ChunkWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::other("the client went away"))
    }
}

/// Run `produce` on a blocking thread, streaming what it writes. If it fails midway the body
/// ends with an error, so the client sees a broken transfer rather than a short "success".
pub fn stream_blocking<F>(produce: F) -> Body
where
    F: FnOnce(&mut ChunkWriter) -> Result<(), String> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChunkWriter { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
        let result = produce(&mut writer).and_then(|()| writer.flush().map_err(|e| e.to_string()));
        if let Err(reason) = result {
            tracing::warn!(%reason, "streamed response failed midway");
            let _ = tx.blocking_send(Err(std::io::Error::other(reason)));
        }
    });
    // Fused: a layer around the body (gzip) may poll it once more after its end, and a bare
    // `unfold` panics then (seen: the compressed export's connection dropped with no answer).
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Body::from_stream(futures_util::StreamExt::fuse(chunks))
}
