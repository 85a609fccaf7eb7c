//! The upstream URL: `postgres://user[:password]@host[:port]/database?sslmode=…&sslrootcert=…`.

use std::path::PathBuf;

use super::UpstreamError;

/// libpq's sslmode values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

#[derive(Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub database: String,
    pub sslmode: SslMode,
    pub sslrootcert: Option<PathBuf>,
}

impl std::fmt::Debug for UpstreamTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        f.debug_struct("UpstreamTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("database", &self.database)
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

impl UpstreamTarget {
    pub fn parse(s: &str) -> Result<UpstreamTarget, UpstreamError> {
        let bad = |m: &str| UpstreamError::Url(m.to_string());
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        if url.scheme() != "postgres" && url.scheme() != "postgresql" {
            return Err(bad("scheme must be postgres:// or postgresql://"));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("missing host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let decode = |v: &str| percent_decode(v).ok_or_else(|| bad("invalid percent-encoding"));
        let user = decode(url.username())?;
        if user.is_empty() {
            return Err(bad("missing user (postgres://USER@host/db)"));
        }
        let password = url.password().map(decode).transpose()?;
        let database = decode(url.path().trim_start_matches('/'))?;
        let mut sslmode = SslMode::Prefer;
        let mut sslrootcert = None;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "sslmode" => {
                    sslmode = match v.as_ref() {
                        "disable" => SslMode::Disable,
                        "allow" => SslMode::Allow,
                        "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => return Err(bad(&format!("unknown sslmode {other:?}"))),
                    }
                }
                "sslrootcert" => sslrootcert = Some(PathBuf::from(v.as_ref())),
                other => return Err(bad(&format!("unsupported parameter {other:?}"))),
            }
        }
        Ok(UpstreamTarget {
            host,
            port: url.port().unwrap_or(5432),
            database: if database.is_empty() {
                user.clone()
            } else {
                database
            },
            user,
            password,
            sslmode,
            sslrootcert,
        })
    }

    /// `host:port`: what errors and logs name.
    pub fn describe(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_url() {
        let t =
            UpstreamTarget::parse("postgres://svc:p%40ss@db.internal:6543/app?sslmode=verify-full")
                .unwrap();
        assert_eq!(t.host, "db.internal");
        assert_eq!(t.port, 6543);
        assert_eq!(t.user, "svc");
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(t.database, "app");
        assert_eq!(t.sslmode, SslMode::VerifyFull);
        assert!(!format!("{t:?}").contains("p@ss"));
        assert_eq!(t.describe(), "db.internal:6543");
    }

    #[test]
    fn defaults_and_errors() {
        let t = UpstreamTarget::parse("postgresql://svc@127.0.0.1").unwrap();
        assert_eq!((t.port, t.database.as_str()), (5432, "svc"));
        assert_eq!(t.sslmode, SslMode::Prefer);
        assert!(UpstreamTarget::parse("mysql://x@h/db").is_err());
        assert!(UpstreamTarget::parse("postgres://h/db").is_err());
        assert!(UpstreamTarget::parse("postgres://u@h/db?sslmode=maybe").is_err());
    }
}
