//! Where the inspector reads from: a stopped gateway's store, opened directly, or a running
//! gateway's admin API (sled lets one process open a store, and the gateway holds it).
//!
//! Both answer the same questions with the same types, so everything after this point does
//! not care which one it got.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::args::SourceArgs;
use super::client::AdminClient;
use super::filter::{Filter, FilterSpec};
use super::{query, InspectError};
use crate::audit::{
    verify, AuditError, AuditStore, Record, ShowView, SledStore, StatementView, VerifyReport,
};

/// Items from either source.
pub type Items<'a, T> = Box<dyn Iterator<Item = Result<T, InspectError>> + 'a>;

/// Admin API paths (also served by `crate::admin::audit_api`).
pub const RECORDS_PATH: &str = "api/audit/records";
pub const VERIFY_PATH: &str = "api/audit/verify";

/// How often a direct-store `tail -f` looks for new records.
const POLL: Duration = Duration::from_millis(250);

pub enum Source {
    Store(SledStore),
    Admin(AdminClient),
}

/// Where `tail`/raw export start.
#[derive(Debug, Clone, Copy)]
pub enum RecordStart {
    /// The last `n` records.
    Last(u64),
    /// At or after this time (RFC 3339 µs text), through the time index.
    Since(i64),
    /// From the first record.
    Beginning,
}

fn admin_url_from_config(cfg: &crate::config::Config) -> Option<String> {
    if !cfg.admin.public_url.is_empty() {
        Some(cfg.admin.public_url.clone())
    } else if !cfg.admin.listen.is_empty() {
        Some(format!("http://{}", cfg.admin.listen))
    } else {
        None
    }
}

impl Source {
    /// Picks the source: `--admin` alone → the API; `--store` → the store, or the API when
    /// the store is locked and an API is known; `--config` → the config's store, or its admin
    /// API when locked. With `verbose`, says which one on `err`.
    pub fn select(
        args: &SourceArgs,
        verbose: bool,
        err: &mut dyn Write,
    ) -> Result<Source, InspectError> {
        let config = args
            .config
            .as_deref()
            .map(|p| {
                crate::config::Config::load(p, std::env::vars())
                    .map_err(|e| InspectError::Source(e.to_string()))
            })
            .transpose()?;
        let store_path: Option<PathBuf> = args
            .store
            .clone()
            .or_else(|| config.as_ref().map(|c| c.audit.path.clone()));
        let admin_url = args
            .admin
            .clone()
            .or_else(|| config.as_ref().and_then(admin_url_from_config));
        let say = |err: &mut dyn Write, text: String| {
            if verbose {
                let _ = writeln!(err, "airlock audit: {text}");
            }
        };
        let admin = |err: &mut dyn Write, url: &str, why: &str| -> Result<Source, InspectError> {
            say(err, format!("{why}; using the admin API at {url}"));
            Ok(Source::Admin(AdminClient::new(url, args.token.clone())?))
        };
        if let (Some(url), None) = (&args.admin, &args.store) {
            // `--admin` given (maybe next to `--config`): the user asked for the API.
            return admin(err, url, "--admin given");
        }
        match (&store_path, &admin_url) {
            (None, None) => Err(InspectError::Source(
                "say where the audit is: --store DIR (stopped gateway), --admin URL --token T \
                 (running gateway) or --config airlock.toml"
                    .into(),
            )),
            (None, Some(url)) => admin(err, url, "no store given"),
            (Some(path), url) => match open_store(path) {
                Ok(store) => {
                    say(
                        err,
                        format!("reading the store at {} directly", path.display()),
                    );
                    Ok(Source::Store(store))
                }
                Err(AuditError::Locked { .. }) => match url {
                    Some(url) => admin(
                        err,
                        url,
                        &format!(
                            "the store at {} is in use by a running gateway",
                            path.display()
                        ),
                    ),
                    None => Err(InspectError::Source(format!(
                        "the store at {} is in use by a running gateway: read it through the \
                         gateway's admin API with --admin URL --token T (or --config)",
                        path.display()
                    ))),
                },
                Err(e) => Err(e.into()),
            },
        }
    }

    /// Statements matching `filter` (compiled from `spec`), with their outcome and approval
    /// trail when `linked`.
    pub fn statements<'a>(
        &'a self,
        spec: &FilterSpec,
        filter: &'a Filter,
        linked: bool,
    ) -> Result<Items<'a, StatementView>, InspectError> {
        match self {
            Source::Store(store) => Ok(Box::new(
                query::statements(store, filter, linked)?.map(|r| r.map_err(InspectError::from)),
            )),
            Source::Admin(client) => {
                let mut pairs = spec.to_pairs();
                pairs.push(("view", "statements".into()));
                pairs.push(("linked", linked.to_string()));
                Ok(Box::new(client.lines(RECORDS_PATH, &pairs)?))
            }
        }
    }

    /// Raw records from `start`, up to `until` (µs) when given; with `follow`, never ends and
    /// yields new records as they are written.
    pub fn records(
        &self,
        start: RecordStart,
        until: Option<i64>,
        follow: bool,
    ) -> Result<Items<'_, Record>, InspectError> {
        match self {
            Source::Store(store) => {
                let from = match start {
                    RecordStart::Last(n) => query::tail_start(store, n)?,
                    RecordStart::Since(t) => store.seq_for_time(t)?,
                    RecordStart::Beginning => 0,
                };
                let since = match start {
                    RecordStart::Since(t) => Some(crate::audit::format_time(t)),
                    _ => None,
                };
                let until = until.map(crate::audit::format_time);
                Ok(Box::new(StoreRecords {
                    store,
                    next: from,
                    since,
                    until,
                    follow,
                    iter: None,
                }))
            }
            Source::Admin(client) => {
                let mut pairs = vec![("view", "records".to_owned())];
                match start {
                    RecordStart::Last(n) => pairs.push(("tail", n.to_string())),
                    RecordStart::Since(t) => pairs.push(("since", crate::audit::format_time(t))),
                    RecordStart::Beginning => {}
                }
                if let Some(u) = until {
                    pairs.push(("until", crate::audit::format_time(u)));
                }
                if follow {
                    pairs.push(("follow", "true".into()));
                }
                Ok(Box::new(client.lines(RECORDS_PATH, &pairs)?))
            }
        }
    }

    pub fn show(&self, id: &str) -> Result<Option<ShowView>, InspectError> {
        match self {
            Source::Store(store) => Ok(crate::audit::view::show(store, id)?),
            Source::Admin(client) => {
                let path = format!("{RECORDS_PATH}/{}", urlencode_segment(id));
                client.get_json(&path, &[])
            }
        }
    }

    pub fn verify(&self) -> Result<VerifyReport, InspectError> {
        match self {
            Source::Store(store) => Ok(verify(store)?),
            Source::Admin(client) => client
                .get_json(VERIFY_PATH, &[])?
                .ok_or_else(|| InspectError::Admin(format!("{VERIFY_PATH}: not found"))),
        }
    }
}

fn open_store(path: &Path) -> Result<SledStore, AuditError> {
    SledStore::open_existing(path)
}

/// Record ids are ULIDs, but an id typed by hand could hold anything.
fn urlencode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Records straight from the store, following new ones by polling when asked to.
struct StoreRecords<'a> {
    store: &'a SledStore,
    next: u64,
    since: Option<String>,
    until: Option<String>,
    follow: bool,
    iter: Option<crate::audit::store::RecordIter<'a>>,
}

impl Iterator for StoreRecords<'_> {
    type Item = Result<Record, InspectError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let iter = self.iter.get_or_insert_with(|| self.store.scan(self.next));
            match iter.next() {
                Some(Ok(raw)) => {
                    self.next = raw.seq + 1;
                    let record = match Record::decode(raw.seq, &raw.bytes) {
                        Ok(r) => r,
                        Err(e) => return Some(Err(e.into())),
                    };
                    if self
                        .since
                        .as_deref()
                        .is_some_and(|s| record.time.as_str() < s)
                    {
                        continue;
                    }
                    if self
                        .until
                        .as_deref()
                        .is_some_and(|u| record.time.as_str() > u)
                    {
                        return None;
                    }
                    return Some(Ok(record));
                }
                Some(Err(e)) => return Some(Err(e.into())),
                None if self.follow => {
                    self.iter = None;
                    std::thread::sleep(POLL);
                }
                None => return None,
            }
        }
    }
}
