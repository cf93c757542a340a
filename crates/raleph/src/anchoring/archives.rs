//! Archives by CID: the files `aleph-offchain` payloads name. A reader looks for one in the
//! node's file store, asks its peers (the node's fetcher), and tries the configured gateways,
//! until `archive_fetch_timeout_secs`; bytes from a gateway are kept only if they hash to the
//! CID asked for. A packer stores the archives it builds. Either way the archive stays pinned
//! for `archive_pin_secs`, so that other nodes can fetch it from this one.

use std::time::Duration;

use anyhow::Context;
use raleph_db::FileRecord;
use raleph_pipeline::PipelineHandle;
use raleph_storage::{FileStore, StorageError};

use super::AnchoringConfig;
use crate::network::FetchRequests;

/// The longest wait between two looks for an archive.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(8);
/// Per gateway request.
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(20);

/// What looking for an archive found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fetched {
    Bytes(Vec<u8>),
    /// Found, but longer than the limit: refused, never stored.
    TooLarge,
    /// Found nowhere in time.
    NotFound,
}

pub(crate) struct Archives {
    files: FileStore,
    fetches: FetchRequests,
    pipeline: PipelineHandle,
    gateways: Vec<String>,
    http: reqwest::Client,
    fetch_timeout: Duration,
    pin_secs: u64,
}

impl Archives {
    pub fn new(
        config: &AnchoringConfig,
        files: FileStore,
        fetches: FetchRequests,
        pipeline: PipelineHandle,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(GATEWAY_TIMEOUT)
            .build()
            .context("HTTP client for archive gateways")?;
        Ok(Archives {
            files,
            fetches,
            pipeline,
            gateways: config.archive_gateways.clone(),
            http,
            fetch_timeout: config.archive_fetch_timeout(),
            pin_secs: config.archive_pin_secs,
        })
    }

    /// The archive `cid`, at most `max_bytes` long.
    pub async fn fetch(&self, cid: &str, max_bytes: usize) -> anyhow::Result<Fetched> {
        let deadline = tokio::time::Instant::now() + self.fetch_timeout;
        let mut delay = Duration::from_millis(250);
        loop {
            match self.local(cid, max_bytes).await? {
                Fetched::NotFound => {}
                found => return Ok(found),
            }
            // Peers: the fetcher stores what it finds; a later look sees it.
            self.fetches.request(cid);
            for gateway in &self.gateways {
                match self.fetch_from_gateway(gateway, cid, max_bytes).await {
                    Ok(Fetched::NotFound) => {}
                    Ok(found) => return Ok(found),
                    Err(e) => tracing::debug!(%gateway, %cid, "anchoring: gateway failed: {e:#}"),
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Fetched::NotFound);
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }

    /// The archive from the node's own store, pinned again for `archive_pin_secs`.
    async fn local(&self, cid: &str, max_bytes: usize) -> anyhow::Result<Fetched> {
        let files = self.files.clone();
        let id = cid.to_owned();
        let found = tokio::task::spawn_blocking(move || -> Result<_, StorageError> {
            let Some(info) = files.info(&id)? else {
                return Ok(None);
            };
            if info.size > max_bytes as u64 {
                return Ok(Some((info, None)));
            }
            Ok(files.get(&id)?.map(|bytes| (info, Some(bytes))))
        })
        .await??;
        match found {
            None => Ok(Fetched::NotFound),
            Some((_, None)) => Ok(Fetched::TooLarge),
            Some((info, Some(bytes))) => {
                self.keep(raleph_api::files::store_adapter::file_record(&info))
                    .await?;
                Ok(Fetched::Bytes(bytes))
            }
        }
    }

    async fn fetch_from_gateway(
        &self,
        gateway: &str,
        cid: &str,
        max_bytes: usize,
    ) -> anyhow::Result<Fetched> {
        let url = format!("{gateway}{cid}");
        let mut response = self.http.get(&url).send().await?;
        if !response.status().is_success() {
            return Ok(Fetched::NotFound);
        }
        // Read no further than the limit, whatever the length the gateway announces.
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if bytes.len() + chunk.len() > max_bytes {
                return Ok(Fetched::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(match self.store(&bytes, Some(cid)).await? {
            Some(_) => Fetched::Bytes(bytes),
            // Other bytes than the CID names: this gateway cannot be trusted for it.
            None => Fetched::NotFound,
        })
    }

    /// Stores `bytes` in the node's file store and pins them for `archive_pin_secs`. With
    /// `expected`, only bytes one of whose identifiers it is are kept (`None` otherwise).
    pub async fn store(
        &self,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> anyhow::Result<Option<FileRecord>> {
        let files = self.files.clone();
        let owned = bytes.to_vec();
        let pending = tokio::task::spawn_blocking(move || {
            let mut writer = files.writer(owned.len() as u64, true)?;
            writer.write(&owned)?;
            writer.finish()
        })
        .await??;
        if let Some(id) = expected
            && !pending.info().ids().any(|known| known == id)
        {
            tracing::warn!(%id, "anchoring: a gateway's bytes do not hash to the CID asked for");
            return Ok(None);
        }
        let record = self
            .pipeline
            .store_file(
                Box::new(raleph_api::files::store_adapter::Upload(pending)),
                true,
            )
            .await?;
        self.keep(record.clone()).await?;
        Ok(Some(record))
    }

    /// Pins the file for `archive_pin_secs` from now.
    async fn keep(&self, file: FileRecord) -> anyhow::Result<()> {
        self.pipeline
            .keep_file_for(file, self.pin_secs as f64)
            .await?;
        Ok(())
    }
}
