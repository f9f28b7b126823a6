//! One simulated host: what `fts poll` sends and keeps between polls, without the
//! installing. Its own certificate and key, its own rustls session store (so its
//! handshakes resume as `fts poll`'s do in loop mode), its own loopback source, and
//! the state that rides in each request: `since` per target, `log-size`, the receipt
//! chain's count and head. A `file` frame's body is read to its end and thrown away
//! (the host's hashing and writing are not what is measured); an answer that
//! delivered anything is followed by a receipt signed with the host's key, sent on a
//! connection of its own, as `fts poll` does.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fts_net::Connection;
use fts_proto::checkpoint::{Checkpoint, Note};
use fts_proto::{
    ClientId, EntryOutcome, EntryOutcomeKind, ErrorCode, Features, FileHash, FileName, KeyId, Outcome,
    Published, Receipt, ReceiptRequest, Request, Seq, ServerFrame, Target,
};
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::pki_types::ServerName;

use crate::fleet_kit::connect_from;

/// Time allowed for one exchange (connect to the server's close), as `fts poll`'s read
/// timeout bounds a stalled one.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Repeats after `more`, at most (`fts poll` bounds them too).
const MAX_REPEATS: usize = 8;

/// A host, between its polls.
pub struct Host {
    pub id: ClientId,
    pub source: Ipv4Addr,
    config: Arc<rustls::ClientConfig>,
    signer: fts_trust::ReceiptSigner,
    since: BTreeMap<Target, u64>,
    log_size: u64,
    receipt_count: u64,
    receipt_head: Option<FileHash>,
}

/// How one poll ended.
pub enum PollEnd {
    /// `done`: the time from connect to `done` (repeats included), the entries
    /// delivered, and the server's `poll-after`.
    Done { took: Duration, delivered: Vec<(Target, Seq, FileName, FileHash)>, poll_after: u64 },
    /// `busy`, with its `retry-after`.
    Busy { retry_after: u64 },
    /// Anything else: a refused or failed connection, an error frame, a timeout.
    Failed(String),
}

impl Host {
    /// A host with its certificate and key, trusting `roots` for the server.
    pub fn new(
        id: ClientId,
        group: Target,
        source: Ipv4Addr,
        roots: Vec<rustls::pki_types::CertificateDer<'static>>,
        cert: rustls::pki_types::CertificateDer<'static>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<Host, String> {
        let signer =
            fts_trust::ReceiptSigner::from_der(key.clone_key()).map_err(|e| format!("signer: {e}"))?;
        let config = fts_trust::client_config(roots, vec![cert], key).map_err(|e| format!("tls: {e}"))?;
        let mut config = Arc::unwrap_or_clone(config);
        // rustls' default store keeps 256 server names; a host talks to one.
        config.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(1)));
        let since = BTreeMap::from([(Target::Client(id.clone()), 0), (Target::All, 0), (group, 0)]);
        Ok(Host {
            id,
            source,
            config: Arc::new(config),
            signer,
            since,
            log_size: 0,
            receipt_count: 0,
            receipt_head: None,
        })
    }

    /// The request `fts poll` would send now (`crates/net/src/client/mod.rs`,
    /// `exchange`): since per target, log-size, features, max file size, the trusted
    /// key ids, the rotation known, the receipt chain, the next poll promised.
    fn request(&self, keys: &[KeyId], next_poll_within: u64) -> Request {
        let mut request = Request::new(self.id.clone());
        request.since = self.since.clone();
        request.log_size = Some(self.log_size);
        request.features = Features::ALL;
        request.max_file_size = Some(64 << 30);
        request.keys = keys.to_vec();
        request.rotation = Some(0);
        request.receipt_count = Some(self.receipt_count);
        request.receipt_head = self.receipt_head;
        request.next_poll_within = Some(next_poll_within);
        request
    }

    /// One poll, and its repeats while the server says `more` (their time added).
    pub async fn poll(&mut self, server: SocketAddr, keys: &[KeyId], next_poll_within: u64) -> PollEnd {
        let mut took = Duration::ZERO;
        let mut delivered = Vec::new();
        for _ in 0..MAX_REPEATS {
            let started = Instant::now();
            let answer =
                tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange(server, keys, next_poll_within)).await;
            took += started.elapsed();
            match answer {
                Err(_) => return PollEnd::Failed("timed out".into()),
                Ok(Err(end)) => return end,
                Ok(Ok((mut got, more, poll_after))) => {
                    delivered.append(&mut got);
                    if !more {
                        return PollEnd::Done { took, delivered, poll_after };
                    }
                }
            }
        }
        PollEnd::Done { took, delivered, poll_after: 0 }
    }

    #[allow(clippy::type_complexity)]
    async fn exchange(
        &mut self,
        server: SocketAddr,
        keys: &[KeyId],
        next_poll_within: u64,
    ) -> Result<(Vec<(Target, Seq, FileName, FileHash)>, bool, u64), PollEnd> {
        let failed = |what: &str| {
            let what = what.to_owned();
            move |e: std::io::Error| PollEnd::Failed(format!("{what}: {e}"))
        };
        let tcp = connect_from(self.source, server).await.map_err(failed("connect"))?;
        let name = ServerName::IpAddress(server.ip().into());
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
            .connect(name, tcp)
            .await
            .map_err(failed("handshake"))?;
        let mut conn = Connection::client(tls);
        conn.send_request(&self.request(keys, next_poll_within)).await.map_err(failed("send"))?;
        let mut delivered = Vec::new();
        let mut body = vec![0u8; 64 * 1024];
        let end = loop {
            let frame =
                conn.read_server_frame().await.map_err(|e| PollEnd::Failed(format!("read: {e:?}")))?;
            match frame {
                ServerFrame::Log(log) => {
                    let size = Note::parse(&log.checkpoint)
                        .ok()
                        .and_then(|note| Checkpoint::parse_text(&note.text).ok())
                        .map(|c| c.size);
                    if let Some(size) = size {
                        self.log_size = size;
                    }
                }
                ServerFrame::File(header) => {
                    let mut left = header.file_size;
                    while left > 0 {
                        let n = conn.read_body_chunk(&mut body).await.map_err(failed("body"))?;
                        if n == 0 {
                            return Err(PollEnd::Failed("the body was cut short".into()));
                        }
                        left -= n as u64;
                    }
                    self.apply(&header.target, header.seq)?;
                    delivered.push((header.target, header.seq, header.file_name, header.file_hash));
                }
                ServerFrame::Superseded(frame) => self.apply(&frame.entry.target, frame.entry.seq)?,
                ServerFrame::Withdrawn(frame) => self.apply(&frame.entry.target, frame.entry.seq)?,
                ServerFrame::Done(done) => break (done.more, done.poll_after),
                ServerFrame::Error(error) if error.code == ErrorCode::Busy => {
                    return Err(PollEnd::Busy { retry_after: error.retry_after.unwrap_or(1) });
                }
                ServerFrame::Error(error) => {
                    return Err(PollEnd::Failed(format!(
                        "error frame {}: {}",
                        error.code.as_str(),
                        error.message
                    )));
                }
                ServerFrame::ReceiptsStored(_) => {
                    return Err(PollEnd::Failed("receipts-stored to a poll".into()));
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.shutdown()).await;
        Ok((delivered, end.0, end.1))
    }

    /// Applies entry `seq` of `target`: the next one, or the answer is refused.
    fn apply(&mut self, target: &Target, seq: Seq) -> Result<(), PollEnd> {
        let Some(since) = self.since.get_mut(target) else {
            return Err(PollEnd::Failed(format!("an entry of {target}, not a target of this host")));
        };
        if seq.get() != *since + 1 {
            return Err(PollEnd::Failed(format!("{target} seq {} after {since}", seq.get())));
        }
        *since = seq.get();
        Ok(())
    }

    /// The receipt of what a poll installed, signed with the host's key and sent on a
    /// connection of its own; `Ok` once the server said it stored it. The chain moves
    /// only then (a receipt not acknowledged is not sent again: the next one starts
    /// from the last acknowledged, which the server refuses as a fork if the first
    /// was stored after all; that is counted as a failure).
    pub async fn send_receipt(
        &mut self,
        server: SocketAddr,
        delivered: &[(Target, Seq, FileName, FileHash)],
    ) -> Result<(), String> {
        let receipt = Receipt {
            client_id: self.id.clone(),
            number: self.receipt_count + 1,
            previous: self.receipt_head,
            made: Published::from_unix_seconds(crate::unix_now()),
            outcomes: delivered
                .iter()
                .map(|(target, seq, name, hash)| {
                    Outcome::Entry(EntryOutcome {
                        target: target.clone(),
                        seq: *seq,
                        file: Some((name.clone(), *hash)),
                        kind: EntryOutcomeKind::Installed,
                    })
                })
                .collect(),
        };
        let signed = self.signer.sign(&receipt).map_err(|e| format!("sign: {e}"))?;
        let hash = fts_trust::receipt_hash(&signed.bytes);
        let request = ReceiptRequest { client_id: self.id.clone(), receipts: vec![signed] };
        let exchange = async {
            let tcp = connect_from(self.source, server).await.map_err(|e| format!("connect: {e}"))?;
            let name = ServerName::IpAddress(server.ip().into());
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            let mut conn = Connection::client(tls);
            conn.send_receipts(&request).await.map_err(|e| format!("send: {e}"))?;
            let frame = conn.read_server_frame().await;
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.shutdown()).await;
            frame.map_err(|e| format!("read: {e:?}"))
        };
        match tokio::time::timeout(Duration::from_secs(30), exchange).await {
            Err(_) => Err("timed out".into()),
            Ok(Err(e)) => Err(e),
            Ok(Ok(ServerFrame::ReceiptsStored(stored))) if stored.stored.contains(&hash) => {
                self.receipt_count += 1;
                self.receipt_head = Some(hash);
                Ok(())
            }
            Ok(Ok(other)) => Err(format!("answered {other:?}")),
        }
    }
}
