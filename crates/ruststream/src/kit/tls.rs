//! [`Tls`]: the TLS settings every broker `Config` embeds.
//!
//! Certificates and keys are given as paths to PEM files, read by the client library on
//! connect; the settings hold no key material, and `Debug` shows no key path either (a
//! path can say more than it should, `/secrets/prod-billing.key`).

use std::fmt;
use std::path::{Path, PathBuf};

/// TLS settings: whether TLS is required, the extra roots to trust, and the client
/// certificate for mutual TLS. The default asks for nothing (TLS only when the URL or
/// the server asks for it).
///
/// ```
/// use ruststream::kit::Tls;
///
/// let tls = Tls::default()
///     .required(true)
///     .root_certificates("/etc/ca.pem")
///     .client_certificate("/etc/client.pem", "/etc/client.key");
/// assert!(tls.is_required());
/// assert_eq!(tls.roots().len(), 1);
/// assert!(!format!("{tls:?}").contains("client.key"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tls {
    required: bool,
    roots: Vec<PathBuf>,
    client: Option<(PathBuf, PathBuf)>,
}

impl Tls {
    /// Refuses to talk to the server without TLS (`true`).
    #[must_use]
    pub fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    /// Trusts the CA certificates in this PEM file too (besides the system's); may be
    /// called more than once.
    #[must_use]
    pub fn root_certificates(mut self, pem: impl Into<PathBuf>) -> Self {
        self.roots.push(pem.into());
        self
    }

    /// Presents this certificate and key (PEM files) for mutual TLS.
    #[must_use]
    pub fn client_certificate(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client = Some((cert.into(), key.into()));
        self
    }

    /// Whether TLS is required.
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// The PEM files of extra CA certificates.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The client certificate and key files, if mutual TLS is set.
    pub fn client(&self) -> Option<(&Path, &Path)> {
        self.client
            .as_ref()
            .map(|(cert, key)| (cert.as_path(), key.as_path()))
    }

    /// Whether anything asks for TLS: required, extra roots or a client certificate.
    pub fn is_configured(&self) -> bool {
        self.required || !self.roots.is_empty() || self.client.is_some()
    }
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("required", &self.required)
            .field("roots", &self.roots)
            .field(
                "client_certificate",
                &self.client.as_ref().map(|(cert, _)| cert),
            )
            .field("client_key", &self.client.as_ref().map(|_| super::REDACTED))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_asks_for_nothing() {
        let tls = Tls::default();
        assert!(!tls.is_required());
        assert!(!tls.is_configured());
        assert!(tls.client().is_none());
    }

    #[test]
    fn every_setting_is_kept() {
        let tls = Tls::default()
            .root_certificates("a.pem")
            .root_certificates("b.pem")
            .client_certificate("c.pem", "k.pem");
        assert!(tls.is_configured());
        assert_eq!(
            tls.roots(),
            [PathBuf::from("a.pem"), PathBuf::from("b.pem")]
        );
        assert_eq!(tls.client(), Some((Path::new("c.pem"), Path::new("k.pem"))));
    }

    #[test]
    fn debug_shows_no_key() {
        let tls = Tls::default().client_certificate("cert.pem", "/secrets/prod.key");
        let shown = format!("{tls:?}");
        assert!(shown.contains("cert.pem"), "{shown}");
        assert!(!shown.contains("prod.key"), "{shown}");
    }
}
