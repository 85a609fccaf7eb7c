//! Expiring HMAC-SHA256 signatures for approval-page links posted in Teams.
//!
//! A Workflows card can only open a URL, and anyone in the channel (or anyone the message is
//! forwarded to) can read it, so the link must not be guessable and must stop working. The
//! signature binds the request id and the expiry; the page still asks the approver to sign in,
//! so a leaked link alone decides nothing.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation: a signature made for something else with the same key never verifies.
const CONTEXT: &[u8] = b"airlock approval link v1\0";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the approval link has expired")]
    Expired,
    #[error("the approval link signature is not valid")]
    BadSignature,
}

fn mac(secret: &[u8], request_id: &str, expires_unix: i64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(CONTEXT);
    mac.update(&(request_id.len() as u64).to_be_bytes());
    mac.update(request_id.as_bytes());
    mac.update(&expires_unix.to_be_bytes());
    mac
}

/// Hex signature over (request id, expiry).
pub fn sign_link(secret: &[u8], request_id: &str, expires_unix: i64) -> String {
    hex::encode(
        mac(secret, request_id, expires_unix)
            .finalize()
            .into_bytes(),
    )
}

/// Checks a signature in constant time, then the expiry.
pub fn verify_link(
    secret: &[u8],
    request_id: &str,
    expires_unix: i64,
    signature_hex: &str,
    now_unix: i64,
) -> Result<(), LinkError> {
    let sig = hex::decode(signature_hex).map_err(|_| LinkError::BadSignature)?;
    mac(secret, request_id, expires_unix)
        .verify_slice(&sig)
        .map_err(|_| LinkError::BadSignature)?;
    if now_unix >= expires_unix {
        return Err(LinkError::Expired);
    }
    Ok(())
}

/// `page_url` with `exp` and `sig` query parameters appended.
pub fn signed_url(page_url: &str, secret: &[u8], request_id: &str, expires_unix: i64) -> String {
    let sig = sign_link(secret, request_id, expires_unix);
    let sep = if page_url.contains('?') { '&' } else { '?' };
    format!("{page_url}{sep}exp={expires_unix}&sig={sig}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn valid_link_verifies_until_expiry() {
        let sig = sign_link(KEY, "req1", 1_000);
        assert_eq!(verify_link(KEY, "req1", 1_000, &sig, 999), Ok(()));
        assert_eq!(
            verify_link(KEY, "req1", 1_000, &sig, 1_000),
            Err(LinkError::Expired)
        );
    }

    #[test]
    fn tampering_is_refused() {
        let sig = sign_link(KEY, "req1", 1_000);
        let bad = Err(LinkError::BadSignature);
        assert_eq!(verify_link(KEY, "req2", 1_000, &sig, 0), bad);
        assert_eq!(verify_link(KEY, "req1", 2_000, &sig, 0), bad);
        assert_eq!(
            verify_link(b"another key entirely, 32 bytes!!", "req1", 1_000, &sig, 0),
            bad
        );
        let mut flipped = sig.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(verify_link(KEY, "req1", 1_000, &flipped, 0), bad);
        assert_eq!(verify_link(KEY, "req1", 1_000, "zz", 0), bad);
        assert_eq!(verify_link(KEY, "req1", 1_000, "", 0), bad);
    }

    #[test]
    fn url_carries_expiry_and_signature() {
        let u = signed_url("https://a.example/approvals/req1", KEY, "req1", 42);
        assert_eq!(
            u,
            format!(
                "https://a.example/approvals/req1?exp=42&sig={}",
                sign_link(KEY, "req1", 42)
            )
        );
        assert!(signed_url("https://a.example/p?x=1", KEY, "r", 1).contains("?x=1&exp=1&sig="));
    }
}
