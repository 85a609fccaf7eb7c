//! The inspector's side of the admin audit API: plain HTTP GETs, JSON lines streamed back.
//!
//! The inspector is a synchronous program (it prints as it reads); a small current-thread
//! runtime drives reqwest and each line is handed over as soon as it arrives, so `tail -f` and
//! large greps stream instead of buffering.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::InspectError;

pub struct AdminClient {
    base: url::Url,
    token: Option<String>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// What the API sends instead of a line when it fails half-way through a stream.
#[derive(Deserialize)]
struct ErrorLine {
    error: String,
}

fn admin_err(e: impl std::fmt::Display) -> InspectError {
    InspectError::Admin(e.to_string())
}

impl AdminClient {
    pub fn new(base: &str, token: Option<String>) -> Result<AdminClient, InspectError> {
        let mut base = url::Url::parse(base)
            .map_err(|e| InspectError::Source(format!("--admin {base}: {e}")))?;
        // API paths are joined relative to the base, so a gateway behind a path prefix works.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if !matches!(base.scheme(), "http" | "https") {
            return Err(InspectError::Source(format!(
                "--admin {base}: expected an http:// or https:// URL"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(admin_err)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(AdminClient {
            base,
            token,
            http,
            rt,
        })
    }

    pub fn base(&self) -> &url::Url {
        &self.base
    }

    fn url(&self, path: &str, pairs: &[(&str, String)]) -> Result<url::Url, InspectError> {
        let mut url = self.base.join(path).map_err(admin_err)?;
        if !pairs.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Sends a GET; `Ok(None)` on 404, an error naming the problem on other failures.
    fn get(
        &self,
        path: &str,
        pairs: &[(&str, String)],
    ) -> Result<Option<reqwest::Response>, InspectError> {
        let url = self.url(path, pairs)?;
        let mut req = self.http.get(url.clone());
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = self
            .rt
            .block_on(req.send())
            .map_err(|e| InspectError::Admin(format!("{}: {e}", self.base)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(Some(resp));
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let body = self.rt.block_on(resp.text()).unwrap_or_default();
        let message = serde_json::from_str::<ErrorLine>(&body)
            .map(|e| e.error)
            .unwrap_or(body);
        Err(InspectError::Admin(match status {
            reqwest::StatusCode::UNAUTHORIZED => {
                format!(
                    "{url}: the admin API refused the token (pass --token or AIRLOCK_ADMIN_TOKEN)"
                )
            }
            _ => format!("{url}: {status}: {message}"),
        }))
    }

    /// One JSON document; `None` on 404.
    pub fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        pairs: &[(&str, String)],
    ) -> Result<Option<T>, InspectError> {
        let Some(resp) = self.get(path, pairs)? else {
            return Ok(None);
        };
        let bytes = self.rt.block_on(resp.bytes()).map_err(admin_err)?;
        Ok(Some(serde_json::from_slice(&bytes).map_err(admin_err)?))
    }

    /// A stream of JSON lines.
    pub fn lines<T: DeserializeOwned>(
        &self,
        path: &str,
        pairs: &[(&str, String)],
    ) -> Result<Lines<'_, T>, InspectError> {
        let resp = self.get(path, pairs)?.ok_or_else(|| {
            InspectError::Admin(format!("{path}: not found (is this an airlock admin API?)"))
        })?;
        Ok(Lines {
            client: self,
            resp: Some(resp),
            buf: Vec::new(),
            _item: std::marker::PhantomData,
        })
    }
}

/// Items of a JSON-lines response, parsed as they arrive.
pub struct Lines<'a, T> {
    client: &'a AdminClient,
    resp: Option<reqwest::Response>,
    buf: Vec<u8>,
    _item: std::marker::PhantomData<T>,
}

impl<T: DeserializeOwned> Lines<'_, T> {
    fn parse(line: &[u8]) -> Result<T, InspectError> {
        match serde_json::from_slice::<T>(line) {
            Ok(v) => Ok(v),
            Err(e) => Err(match serde_json::from_slice::<ErrorLine>(line) {
                Ok(err) => InspectError::Admin(err.error),
                Err(_) => InspectError::Admin(format!("unreadable line from the admin API: {e}")),
            }),
        }
    }
}

impl<T: DeserializeOwned> Iterator for Lines<'_, T> {
    type Item = Result<T, InspectError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(nl) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=nl).collect();
                let line = &line[..line.len() - 1];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(Self::parse(line));
            }
            let resp = self.resp.as_mut()?;
            match self.client.rt.block_on(resp.chunk()) {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) => {
                    self.resp = None;
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    let rest = std::mem::take(&mut self.buf);
                    return Some(Self::parse(&rest));
                }
                Err(e) => {
                    self.resp = None;
                    return Some(Err(admin_err(e)));
                }
            }
        }
    }
}
