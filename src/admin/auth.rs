//! Approver bearer tokens. Only SHA-256 hashes are configured; a presented token is hashed
//! and compared with every configured hash in constant time, so neither the config file nor
//! response timing gives a token away.

use std::collections::BTreeMap;

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AdminError;

/// Approver name → token hash.
#[derive(Clone, Default)]
pub struct TokenStore {
    entries: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(n, _)| n))
            .finish()
    }
}

/// SHA-256 hex of a token: what goes into `[admin.tokens]`.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl TokenStore {
    pub fn from_config(tokens: &BTreeMap<String, String>) -> Result<Self, AdminError> {
        let mut entries = Vec::with_capacity(tokens.len());
        for (name, hash) in tokens {
            let bad = |message: &str| AdminError::Token {
                name: name.clone(),
                message: message.to_owned(),
            };
            if name.trim().is_empty() {
                return Err(bad("approver name is empty"));
            }
            let bytes = hex::decode(hash.trim())
                .map_err(|_| bad("must be the SHA-256 of the token as 64 hex digits"))?;
            let digest: [u8; 32] = bytes
                .try_into()
                .map_err(|_| bad("must be the SHA-256 of the token as 64 hex digits"))?;
            if entries.iter().any(|(_, d)| ct_eq(d, &digest)) {
                return Err(bad("the same token hash is configured for two approvers"));
            }
            entries.push((name.clone(), digest));
        }
        Ok(TokenStore { entries })
    }

    /// The approver a token belongs to.
    pub fn identify(&self, token: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (name, d) in &self.entries {
            if ct_eq(d, &digest) {
                found = Some(name.as_str());
            }
        }
        found
    }

    /// The approver named by an `Authorization: Bearer …` header.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let value = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed authorization header"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?;
        self.identify(token)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::unauthorized("unknown token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> TokenStore {
        let mut m = BTreeMap::new();
        m.insert("alice".to_string(), hash_token("tok-alice"));
        m.insert("bob".to_string(), hash_token("tok-bob"));
        TokenStore::from_config(&m).unwrap()
    }

    #[test]
    fn tokens_identify_their_owner_only() {
        let s = store();
        assert_eq!(s.identify("tok-alice"), Some("alice"));
        assert_eq!(s.identify("tok-bob"), Some("bob"));
        assert_eq!(s.identify("tok-carol"), None);
        assert_eq!(s.identify(""), None);
        // The configured hash itself is not a token.
        assert_eq!(s.identify(&hash_token("tok-alice")), None);
    }

    #[test]
    fn bad_hashes_are_config_errors() {
        let mut m = BTreeMap::new();
        m.insert("alice".to_string(), "plaintext-token".to_string());
        let err = TokenStore::from_config(&m).unwrap_err().to_string();
        assert!(err.contains("alice") && err.contains("64 hex"), "{err}");
        m.insert("alice".to_string(), "ab".repeat(31));
        assert!(TokenStore::from_config(&m).is_err());
    }

    #[test]
    fn shared_token_is_refused() {
        let mut m = BTreeMap::new();
        m.insert("alice".to_string(), hash_token("same"));
        m.insert("bob".to_string(), hash_token("same"));
        assert!(TokenStore::from_config(&m).is_err());
    }
}
