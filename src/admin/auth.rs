//! Approver bearer tokens. Only SHA-256 hashes are configured; a presented token is hashed
//! and compared with every configured hash in constant time, so neither the config file nor
//! response timing gives a token away.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::AdminError;
use crate::policy::PolicyStore;

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

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Who a bearer token belongs to: first the `[admin.tokens]` of the config, then the
/// `token_sha256` of the policy's approvers (read from the policy in force, so a reload
/// adds or revokes tokens without a restart).
#[derive(Clone)]
pub struct Authenticator {
    config: TokenStore,
    policy: Option<Arc<PolicyStore>>,
}

impl Authenticator {
    pub fn new(config: TokenStore, policy: Option<Arc<PolicyStore>>) -> Self {
        Authenticator { config, policy }
    }

    /// The identity a token proves, if any.
    pub fn identify(&self, token: &str) -> Option<String> {
        if let Some(name) = self.config.identify(token) {
            return Some(name.to_owned());
        }
        let policy = self.policy.as_ref()?.current();
        policy.approver_by_token(token).map(|a| a.name.clone())
    }

    /// The identity named by an `Authorization: Bearer …` header.
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
    fn policy_tokens_follow_reloads() {
        let policy_text = |token: &str| {
            format!(
                "[approvers.carol]\ntoken_sha256 = \"{}\"\n",
                hash_token(token)
            )
        };
        let policy = crate::policy::Policy::from_str(&policy_text("tok-carol"), "p.toml").unwrap();
        let store = Arc::new(PolicyStore::new(policy));
        let auth = Authenticator::new(store_of(&[("ops", "tok-ops")]), Some(store.clone()));
        assert_eq!(auth.identify("tok-ops").as_deref(), Some("ops"));
        assert_eq!(auth.identify("tok-carol").as_deref(), Some("carol"));
        store.replace(crate::policy::Policy::from_str(&policy_text("tok-new"), "p.toml").unwrap());
        assert_eq!(auth.identify("tok-carol"), None, "revoked by the reload");
        assert_eq!(auth.identify("tok-new").as_deref(), Some("carol"));
    }

    fn store_of(pairs: &[(&str, &str)]) -> TokenStore {
        let m = pairs
            .iter()
            .map(|(n, t)| (n.to_string(), hash_token(t)))
            .collect();
        TokenStore::from_config(&m).unwrap()
    }

    #[test]
    fn shared_token_is_refused() {
        let mut m = BTreeMap::new();
        m.insert("alice".to_string(), hash_token("same"));
        m.insert("bob".to_string(), hash_token("same"));
        assert!(TokenStore::from_config(&m).is_err());
    }
}
