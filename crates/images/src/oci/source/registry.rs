//! `docker://REGISTRY/REPO[:TAG|@DIGEST]` through the `oci-client` crate. Plain HTTP
//! only for a registry on localhost (or with `--insecure`); credentials from
//! `~/.docker/config.json` when it has them (its credential helpers too: `credentials.rs`);
//! every blob checked against its digest.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use banger_system::progress::{Progress, Unit};
use banger_system::runner::RealRunner;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

use super::credentials::{self, Helpers};
use super::layout::short;
use super::{Resolved, Source, SourceOptions};
use crate::oci::OciError;
use crate::oci::cache::{BlobCache, BlobWriter};
use crate::oci::spec::{self, Document, MANIFEST_TYPES, MAX_JSON};

/// Where credentials come from.
#[derive(Debug, Clone)]
pub enum RegistryAuthSource {
    Anonymous,
    /// From a docker `config.json`: its credential helpers, then `auths.<registry>`.
    DockerConfig(PathBuf),
}

pub struct Registry {
    reference: Reference,
    client: Client,
    auth: RegistryAuth,
    runtime: tokio::runtime::Runtime,
}

fn is_local(registry: &str) -> bool {
    let host = registry
        .strip_prefix('[')
        .and_then(|r| r.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| registry.split(':').next().unwrap_or(registry));
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

impl Registry {
    pub fn open(text: &str, opts: &SourceOptions) -> Result<Self, OciError> {
        let reference: Reference = text.parse().map_err(|e| OciError::Reference {
            reference: format!("docker://{text}"),
            problem: format!("is not a valid registry reference: {e}"),
        })?;
        let registry = reference.resolve_registry().to_string();
        let protocol = if opts.insecure || is_local(&registry) {
            ClientProtocol::HttpsExcept(vec![registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            platform_resolver: None,
            ..Default::default()
        };
        let helpers = Helpers {
            runner: &RealRunner,
            find: &banger_system::runner::lookup_executable,
        };
        let auth = match opts.docker_config.as_deref() {
            Some(config) => credentials::docker_auth(config, &registry, &helpers)
                .map_err(|problem| OciError::Registry {
                    reference: reference.whole(),
                    problem,
                })?
                .unwrap_or(RegistryAuth::Anonymous),
            None => RegistryAuth::Anonymous,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| OciError::Io {
                op: "start an I/O runtime for",
                path: PathBuf::from(text),
                source: e,
            })?;
        Ok(Self {
            reference,
            client: Client::new(config),
            auth,
            runtime,
        })
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) -> OciError {
        OciError::Registry {
            reference: self.reference.whole(),
            problem: format!("{what}: {e}"),
        }
    }

    /// [`Self::fail`] for the client's errors, with their causes: its own message for a
    /// failed request is only "error sending request for url (…)", and why (refused, no
    /// such host, a TLS problem) is in the chain.
    fn failed_request(&self, what: &str, e: &oci_client::errors::OciDistributionError) -> OciError {
        self.fail(what, banger_system::error_chain(e))
    }

    fn blob(&self, digest: &str, writer: BlobWriter) -> Result<BlobWriter, OciError> {
        let mut adapter = SyncWrite(writer);
        self.runtime
            .block_on(self.client.pull_blob(&self.reference, digest, &mut adapter))
            .map_err(|e| self.failed_request(&format!("fetching blob {digest}"), &e))?;
        Ok(adapter.0)
    }
}

impl Source for Registry {
    fn resolve(&mut self, progress: &dyn Progress) -> Result<Resolved, OciError> {
        progress.phase(
            &format!("fetching the manifest of {}", self.reference.whole()),
            None,
            None,
        );
        let mut reference = self.reference.clone();
        for _ in 0..4 {
            let (bytes, digest) = self
                .runtime
                .block_on(
                    self.client
                        .pull_manifest_raw(&reference, &self.auth, &MANIFEST_TYPES),
                )
                .map_err(|e| self.failed_request("fetching the manifest", &e))?;
            if bytes.len() as u64 > MAX_JSON {
                return Err(self.fail("the manifest", "is larger than any manifest should be"));
            }
            let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
            if let Some(pinned) = reference.digest()
                && pinned != actual
            {
                return Err(self.fail(
                    "the manifest",
                    format!("does not match the digest it was asked by ({pinned}, got {actual})"),
                ));
            }
            match spec::parse_document(&bytes, None).map_err(|e| self.fail("the manifest", e))? {
                Document::Index(index) => {
                    let chosen = spec::pick_amd64(&index).map_err(|e| self.fail("the index", e))?;
                    reference = self.reference.clone_with_digest(chosen.digest.clone());
                }
                Document::Manifest(m) => {
                    if m.config.size > MAX_JSON {
                        return Err(
                            self.fail("the image config", "is larger than any config should be")
                        );
                    }
                    let mut config = Vec::new();
                    self.runtime
                        .block_on(self.client.pull_blob(
                            &self.reference,
                            m.config.digest.as_str(),
                            &mut config,
                        ))
                        .map_err(|e| self.failed_request("fetching the image config", &e))?;
                    let got = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
                    if got != m.config.digest {
                        return Err(self.fail(
                            "the image config",
                            format!("does not match its digest {} (got {got})", m.config.digest),
                        ));
                    }
                    let _ = digest;
                    return Ok(Resolved {
                        manifest_digest: Some(actual),
                        config,
                        config_digest: m.config.digest,
                        layers: m.layers,
                    });
                }
            }
        }
        Err(self.fail("the manifest", "nests indexes too deeply"))
    }

    fn fetch_layers(
        &mut self,
        resolved: &Resolved,
        cache: &BlobCache,
        progress: &dyn Progress,
    ) -> Result<(), OciError> {
        for layer in &resolved.layers {
            if cache.get(&layer.digest, Some(layer.size))?.is_some() {
                continue;
            }
            progress.phase(
                &format!("downloading layer {}", short(&layer.digest)),
                Some(layer.size),
                Some(Unit::Bytes),
            );
            let writer = self.blob(&layer.digest, cache.writer()?)?;
            progress.advance(writer.total);
            writer.finish(Some(&layer.digest), Some(layer.size))?;
        }
        Ok(())
    }
}

/// Lets oci-client's async `pull_blob` write into our (synchronous, local-file) writer.
struct SyncWrite<W>(W);

impl<W: std::io::Write + Unpin> tokio::io::AsyncWrite for SyncWrite<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.0.write(buf))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.0.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry that cannot be reached says why (the connection was refused), not only
    /// "error sending request for url".
    #[test]
    fn an_unreachable_registry_says_why() {
        let opts = SourceOptions {
            insecure: false,
            docker_config: None,
        };
        // Port 1 on this host: nothing listens there.
        let mut registry = Registry::open("127.0.0.1:1/x:1", &opts).unwrap();
        let err = registry
            .resolve(&banger_system::progress::NoProgress)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("fetching the manifest"), "{err}");
        assert!(err.to_lowercase().contains("refused"), "{err}");
    }

    #[test]
    fn only_local_registries_get_plain_http() {
        for local in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
        ] {
            assert!(is_local(local), "{local}");
        }
        for remote in [
            "registry.example.com",
            "10.0.0.1:5000",
            "localhost.evil.com",
        ] {
            assert!(!is_local(remote), "{remote}");
        }
    }
}
