//! The classifier: query text → [`Classified`], cached.
//!
//! Two caches, both keyed with the search_path: by exact text (a hit is a hash, a short lock, a
//! string compare and an `Arc` clone), and by fingerprint (literals blanked), so that the same
//! statement with other constants — what agents send most — skips parsing: it costs a lex, a
//! redaction and a copy of the facts. The fingerprint cache only takes texts whose facts provably
//! do not depend on their literals (see [`Analysis::by_fingerprint`]).

use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::analyze::{analyze_text, Analysis};
use super::cache::Cache;
use super::functions::FunctionPolicy;
use super::implied::{add_calls, judged};
use super::lexer::{lex, Lexed};
use super::scope::Ctx;
use super::secret::redact;
use super::session::resolve_in_session;
pub use super::session::SessionSqlState;
use super::statement::Effect;
use super::text::literal_free_key;
use super::{Catalog, Classified, ClassifierOptions, Facts};

/// Texts longer than this are classified but not cached (a multi-megabyte INSERT would evict
/// thousands of useful entries).
const MAX_CACHED_TEXT: usize = 64 * 1024;

/// Classification of one text, with what it does to session state.
#[derive(Debug)]
pub(crate) struct Entry {
    pub classified: Arc<Classified>,
    /// One per statement; `None` when no statement touches session state (the common case).
    pub effects: Option<Box<[Effect]>>,
}

/// Prepared policy knobs.
#[derive(Debug)]
struct Knobs {
    opts: ClassifierOptions,
    functions: FunctionPolicy,
    allowed_settings: HashSet<String>,
}

/// Classifies query text against a catalog snapshot. Shared by all sessions (`Send + Sync`).
pub struct Classifier {
    catalog: Arc<Catalog>,
    knobs: Arc<Knobs>,
    by_text: Option<Cache<Entry>>,
    by_fingerprint: Option<Cache<Entry>>,
    /// Full analyses run (cache misses on both levels).
    analyses: AtomicUsize,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("relations", &self.catalog.relations.len())
            .field("functions", &self.catalog.functions.len())
            .field("options", &self.knobs.opts)
            .finish()
    }
}

impl Classifier {
    pub fn new(catalog: Arc<Catalog>, opts: ClassifierOptions) -> Classifier {
        let knobs = Knobs {
            functions: FunctionPolicy {
                safe: opts
                    .safe_functions
                    .iter()
                    .map(|s| s.to_ascii_lowercase())
                    .collect(),
            },
            allowed_settings: opts
                .allowed_settings
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            opts,
        };
        Classifier::with_knobs(catalog, Arc::new(knobs))
    }

    fn with_knobs(catalog: Arc<Catalog>, knobs: Arc<Knobs>) -> Classifier {
        let capacity = knobs.opts.cache_capacity;
        Classifier {
            catalog,
            knobs,
            by_text: Cache::new(capacity),
            by_fingerprint: Cache::new(capacity),
            analyses: AtomicUsize::new(0),
        }
    }

    /// The same options over a new catalog snapshot (after a reload), with fresh caches.
    pub fn with_catalog(&self, catalog: Arc<Catalog>) -> Classifier {
        Classifier::with_knobs(catalog, self.knobs.clone())
    }

    /// The same catalog with new options (after a policy reload), with fresh caches.
    pub fn with_options(&self, opts: ClassifierOptions) -> Classifier {
        Classifier::new(self.catalog.clone(), opts)
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn options(&self) -> &ClassifierOptions {
        &self.knobs.opts
    }

    /// How many texts were fully analyzed (parsed) rather than served from a cache.
    pub fn analyses(&self) -> usize {
        self.analyses.load(Ordering::Relaxed)
    }

    /// Classify with the catalog's default search_path.
    pub fn classify(&self, sql: &str) -> Arc<Classified> {
        self.classify_with_search_path(sql, &self.catalog.search_path)
    }

    /// Classify with an explicit search_path (the session's). Statements that depend on session
    /// state (`EXECUTE`) come out `unknown`; use [`Classifier::classify_in_session`] for them.
    pub fn classify_with_search_path(&self, sql: &str, search_path: &[String]) -> Arc<Classified> {
        self.entry(sql, search_path).classified.clone()
    }

    /// Classify within a session: `PREPARE` is recorded, `EXECUTE` takes the facts of what was
    /// prepared (an unknown name stays `unknown`), `DEALLOCATE`/`DISCARD ALL` forget, and
    /// `SET search_path` changes how later names resolve.
    ///
    /// State changes are applied when the text is classified, before the policy decides. That
    /// is safe whatever the decision: a name prepared twice keeps every candidate definition
    /// (EXECUTE is judged by the riskiest), a forgotten name makes EXECUTE `unknown`, and after
    /// a SET of search_path names resolve under both the old and the new path until the session
    /// confirms which one the server has.
    pub fn classify_in_session(&self, state: &mut SessionSqlState, sql: &str) -> Arc<Classified> {
        if state.plain() {
            let entry = self.entry(sql, &state.search_path);
            if entry.effects.is_none() {
                state.observe(&entry.classified.statements);
                return entry.classified.clone();
            }
        }
        resolve_in_session(state, &self.catalog.search_path, |path| {
            self.entry(sql, path)
        })
    }

    /// `classified` for a statement whose parameters the client declared as `types` (OIDs, as
    /// a Parse message gives them): binding a value converts it to its type, which runs the
    /// type's code (a domain's CHECK constraint), so the statement calls what that runs. The
    /// same analysis when no declared type runs anything, which is the common case.
    pub fn with_parameter_types(
        &self,
        classified: Arc<Classified>,
        types: &[u32],
    ) -> Arc<Classified> {
        if self.catalog.type_oids.is_empty() {
            return classified;
        }
        let cat = &self.catalog;
        let runs = types
            .iter()
            .filter_map(|t| cat.type_oids.get(t))
            .filter_map(|name| cat.types.get(name))
            .flatten();
        let calls = judged(&self.knobs.functions, cat, runs);
        if calls.is_empty() {
            return classified;
        }
        let mut facts = Vec::clone(&classified.statements);
        for f in &mut facts {
            add_calls(f, &calls);
        }
        Arc::new(Classified {
            statements: Arc::new(facts),
            ..Classified::clone(&classified)
        })
    }

    pub(crate) fn entry(&self, sql: &str, path: &[String]) -> Arc<Entry> {
        let cacheable = sql.len() <= MAX_CACHED_TEXT;
        let text_key = match (&self.by_text, cacheable) {
            (Some(c), true) => {
                let key = c.key(path, sql);
                if let Some(e) = c.get(key, path, sql) {
                    return e;
                }
                Some(key)
            }
            _ => None,
        };
        let lexed = lex(sql, true);
        // Same statement, other constants?
        let fp_key = match (&self.by_fingerprint, cacheable) {
            (Some(c), true) if !lexed.unterminated && !lexed.backslash_in_plain_string => {
                literal_free_key(sql, &lexed.toks).map(|fp| (c, fp))
            }
            _ => None,
        };
        let fp_key = match fp_key {
            Some((c, fp)) => {
                let key = c.key(path, &fp);
                if let Some(same) = c.get(key, path, &fp) {
                    // Not remembered by text: texts that differ only in constants rarely
                    // repeat, and caching each one would only churn the text cache.
                    if let Some(e) = reuse(sql, &lexed, &same) {
                        return Arc::new(e);
                    }
                }
                Some((key, fp))
            }
            _ => None,
        };
        let analysis = self.analyze(sql, path, &lexed);
        // Sharing facts across constants is for the OLTP hot path only. Elsewhere a literal can
        // stand where a name belongs (sqlparser accepts `DROP TABLE 'x'`), and those statements
        // are rare enough to analyse every time.
        let by_fingerprint = analysis.by_fingerprint
            && analysis.classified.statements.iter().all(|f| {
                matches!(
                    f.kind,
                    super::Kind::Read
                        | super::Kind::Write
                        | super::Kind::Catalog
                        | super::Kind::Txn
                )
            });
        let effects = analysis
            .effects
            .iter()
            .any(|e| *e != Effect::None)
            .then(|| analysis.effects.into_boxed_slice());
        let entry = Arc::new(Entry {
            classified: Arc::new(analysis.classified),
            effects,
        });
        self.remember(text_key, path, sql, &entry);
        if let (Some(c), Some((key, fp)), true) = (&self.by_fingerprint, fp_key, by_fingerprint) {
            c.put(key, path, &fp, entry.clone());
        }
        entry
    }

    fn remember(&self, key: Option<u64>, path: &[String], sql: &str, e: &Arc<Entry>) {
        if let (Some(c), Some(key)) = (&self.by_text, key) {
            c.put(key, path, sql, e.clone());
        }
    }

    fn analyze(&self, sql: &str, path: &[String], lexed: &Lexed) -> Analysis {
        self.analyses.fetch_add(1, Ordering::Relaxed);
        let (path, temp) = super::names::split_temp(path);
        let cx = Ctx {
            catalog: &self.catalog,
            path,
            temp,
            functions: &self.knobs.functions,
            allowed_settings: &self.knobs.allowed_settings,
            literal_sensitive: Cell::new(false),
            marks: Default::default(),
        };
        match catch_unwind(AssertUnwindSafe(|| analyze_text(&cx, sql, lexed))) {
            Ok(a) => a,
            Err(_) => {
                tracing::error!(
                    len = sql.len(),
                    "classifier panicked; statement held as unknown"
                );
                Analysis {
                    classified: Classified {
                        statements: Arc::new(vec![Facts::unknown("unclassifiable text")]),
                        fingerprint: String::new(),
                        redacted: "[text withheld: it could not be classified]".into(),
                    },
                    effects: vec![Effect::None],
                    by_fingerprint: false,
                }
            }
        }
    }
}

/// The facts of a text with the same fingerprint, for this text: only when this text carries no
/// secret (its own redaction then changes nothing but comments).
fn reuse(sql: &str, lexed: &Lexed, same: &Entry) -> Option<Entry> {
    let (redacted, hits) = redact(sql, &lexed.toks, false);
    if !hits.is_empty() {
        return None;
    }
    Some(Entry {
        classified: Arc::new(Classified {
            statements: same.classified.statements.clone(),
            fingerprint: super::text::fingerprint(sql, &lexed.toks),
            redacted,
        }),
        effects: None,
    })
}
