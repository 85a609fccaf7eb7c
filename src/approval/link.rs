//! Expiring, HMAC-signed links to the approval page, for cards posted where approvers click
//! (Teams Workflows webhook mode: only `Action.OpenUrl` works there).
//!
//! A valid link lets its holder *view* that one request (the same information the card already
//! shows) until it expires. It does not identify anyone and cannot approve: the page still asks
//! the approver to sign in with their own token before a verdict can be sent.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key links are signed with. Made once at start and shared by the admin listener (which
/// verifies) and the notifiers (which sign).
#[derive(Clone)]
pub struct LinkSecret(Arc<[u8]>);

impl LinkSecret {
    /// The configured secret, or a random one for this process when none is configured (links
    /// then stop working when the gateway restarts).
    pub fn from_config(configured: &str) -> Self {
        if configured.is_empty() {
            let mut key = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
            LinkSecret(Arc::from(&key[..]))
        } else {
            LinkSecret(Arc::from(configured.as_bytes()))
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSecret(..)")
    }
}

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Signature does not match (tampered id or expiry, wrong secret, garbage).
    #[error("invalid approval link signature")]
    Invalid,
    /// Signature is right but the link is past its expiry.
    #[error("approval link expired")]
    Expired,
}

fn mac(secret: &[u8], id: &str, exp: u64) -> Hmac<Sha256> {
    // new_from_slice accepts keys of any length for HMAC.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"airlock-approval-link-v1\0");
    mac.update(id.as_bytes());
    mac.update(b"\0");
    mac.update(exp.to_string().as_bytes());
    mac
}

/// Signature for request `id` valid until `exp` (Unix seconds), URL-safe base64.
pub fn sign_link(secret: &[u8], id: &str, exp: u64) -> String {
    URL_SAFE_NO_PAD.encode(mac(secret, id, exp).finalize().into_bytes())
}

/// Checks a link's signature first (so a tampered expiry is `Invalid`, never `Expired`), then
/// its expiry against `now`. Comparison is constant time.
pub fn verify_link(
    secret: &[u8],
    id: &str,
    exp: u64,
    sig: &str,
    now: SystemTime,
) -> Result<(), LinkError> {
    let sig = URL_SAFE_NO_PAD
        .decode(sig.as_bytes())
        .map_err(|_| LinkError::Invalid)?;
    mac(secret, id, exp)
        .verify_slice(&sig)
        .map_err(|_| LinkError::Invalid)?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if now >= exp {
        return Err(LinkError::Expired);
    }
    Ok(())
}

/// The full page URL for a request: `{public_url}/approvals/{id}?exp=…&sig=…`.
pub fn signed_url(public_url: &str, secret: &[u8], id: &str, exp: u64) -> String {
    format!(
        "{}/approvals/{}?exp={}&sig={}",
        public_url.trim_end_matches('/'),
        id,
        exp,
        sign_link(secret, id, exp)
    )
}

/// The unsigned page URL for a request (for notices, CLI output).
pub fn page_url(public_url: &str, id: &str) -> String {
    format!("{}/approvals/{}", public_url.trim_end_matches('/'), id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn valid_link_verifies_until_expiry() {
        let sig = sign_link(SECRET, "01ABC", 1_000);
        assert_eq!(verify_link(SECRET, "01ABC", 1_000, &sig, at(999)), Ok(()));
        assert_eq!(
            verify_link(SECRET, "01ABC", 1_000, &sig, at(1_000)),
            Err(LinkError::Expired)
        );
    }

    #[test]
    fn tampering_is_invalid_not_expired() {
        let sig = sign_link(SECRET, "01ABC", 1_000);
        // Extending the expiry of an expired link must not work.
        assert_eq!(
            verify_link(SECRET, "01ABC", 5_000, &sig, at(2_000)),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            verify_link(SECRET, "01ABD", 1_000, &sig, at(10)),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            verify_link(b"another secret", "01ABC", 1_000, &sig, at(10)),
            Err(LinkError::Invalid)
        );
        assert_eq!(
            verify_link(SECRET, "01ABC", 1_000, "not base64!", at(10)),
            Err(LinkError::Invalid)
        );
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            verify_link(SECRET, "01ABC", 1_000, &flipped, at(10)),
            Err(LinkError::Invalid)
        );
    }

    #[test]
    fn id_and_expiry_cannot_be_shifted_into_each_other() {
        // "1" + "\0" + "23" and "12" + "\0" + "3" must differ.
        assert_ne!(sign_link(SECRET, "1", 23), sign_link(SECRET, "12", 3));
    }

    #[test]
    fn signed_url_has_the_parts() {
        let url = signed_url("http://h:1/", SECRET, "01ABC", 77);
        assert!(
            url.starts_with("http://h:1/approvals/01ABC?exp=77&sig="),
            "{url}"
        );
    }
}
