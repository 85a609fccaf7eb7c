//! The classifier: query text → [`Classified`], cached by (search_path, text).
//!
//! One text is lexed once by the PostgreSQL-faithful lexer (split, fingerprint, redaction,
//! labels) and each statement is tokenized and parsed once by sqlparser. The two lexers must
//! agree on which parts of a statement are identifiers and which are strings or comments; if they
//! do not, the statement is `unknown` — a parser that saw a comment where the server sees code
//! must never decide what runs.
//!
//! The cache is sharded (by the hash of the key) so sessions rarely contend on a lock, and a hit
//! is a hash, a short lock, a string compare and an `Arc` clone.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use lru::LruCache;
use parking_lot::Mutex;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::functions::FunctionPolicy;
use super::lexer::{lex, Lexed, Tok, TokKind};
use super::scope::Ctx;
use super::session::resolve_in_session;
pub use super::session::SessionSqlState;
use super::statement::{classify_statement, Effect, Source};
use super::text::{fingerprint, redact, redact_raw, split_statements, token_kind, token_label};
use super::{Catalog, Classified, ClassifierOptions, Facts, Kind};

/// Texts longer than this are classified but not cached (a multi-megabyte INSERT would evict
/// thousands of useful entries).
const MAX_CACHED_TEXT: usize = 64 * 1024;

const SHARDS: usize = 16;

/// Classification of one text, with what it does to session state.
#[derive(Debug)]
pub(crate) struct Entry {
    path: Box<[String]>,
    text: Box<str>,
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

type Shard = Mutex<LruCache<u64, Arc<Entry>>>;

struct Cache {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

impl Cache {
    fn new(capacity: usize) -> Option<Cache> {
        let per_shard = NonZeroUsize::new(capacity.div_ceil(SHARDS))?;
        Some(Cache {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            hasher: RandomState::new(),
        })
    }

    fn key(&self, path: &[String], text: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        path.hash(&mut h);
        text.hash(&mut h);
        h.finish()
    }

    fn get(&self, key: u64, path: &[String], text: &str) -> Option<Arc<Entry>> {
        let mut shard = self.shards[(key as usize) % SHARDS].lock();
        let e = shard.get(&key)?;
        (&*e.text == text && &*e.path == path).then(|| e.clone())
    }

    fn put(&self, key: u64, e: Arc<Entry>) {
        self.shards[(key as usize) % SHARDS].lock().put(key, e);
    }
}

/// Classifies query text against a catalog snapshot. Shared by all sessions (`Send + Sync`);
/// cheap to clone through an `Arc`.
pub struct Classifier {
    catalog: Arc<Catalog>,
    knobs: Arc<Knobs>,
    cache: Option<Cache>,
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
        let cache = Cache::new(knobs.opts.cache_capacity);
        Classifier {
            catalog,
            knobs: Arc::new(knobs),
            cache,
        }
    }

    /// The same options over a new catalog snapshot (after a reload), with a fresh cache.
    pub fn with_catalog(&self, catalog: Arc<Catalog>) -> Classifier {
        Classifier {
            catalog,
            knobs: self.knobs.clone(),
            cache: Cache::new(self.knobs.opts.cache_capacity),
        }
    }

    /// The same catalog with new options (after a policy reload), with a fresh cache.
    pub fn with_options(&self, opts: ClassifierOptions) -> Classifier {
        Classifier::new(self.catalog.clone(), opts)
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn options(&self) -> &ClassifierOptions {
        &self.knobs.opts
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
        if state.other_search_paths.is_empty() && !state.search_path_lost {
            let entry = self.entry(sql, &state.search_path);
            if entry.effects.is_none() {
                return entry.classified.clone();
            }
        }
        resolve_in_session(state, &self.catalog.search_path, |path| {
            self.entry(sql, path)
        })
    }

    pub(crate) fn entry(&self, sql: &str, path: &[String]) -> Arc<Entry> {
        let cacheable = sql.len() <= MAX_CACHED_TEXT;
        let key = match (&self.cache, cacheable) {
            (Some(c), true) => {
                let key = c.key(path, sql);
                if let Some(e) = c.get(key, path, sql) {
                    return e;
                }
                Some(key)
            }
            _ => None,
        };
        let entry = Arc::new(self.analyze(sql, path));
        if let (Some(c), Some(key)) = (&self.cache, key) {
            c.put(key, entry.clone());
        }
        entry
    }

    fn analyze(&self, sql: &str, path: &[String]) -> Entry {
        let cx = Ctx {
            catalog: &self.catalog,
            path,
            functions: &self.knobs.functions,
            allowed_settings: &self.knobs.allowed_settings,
        };
        let (classified, effects) = match catch_unwind(AssertUnwindSafe(|| analyze_text(&cx, sql)))
        {
            Ok(r) => r,
            Err(_) => {
                tracing::error!(
                    len = sql.len(),
                    "classifier panicked; statement held as unknown"
                );
                (
                    Classified {
                        statements: vec![Facts::unknown("unclassifiable text")],
                        fingerprint: String::new(),
                        redacted: "[text withheld: it could not be classified]".into(),
                    },
                    Vec::new(),
                )
            }
        };
        let effects = effects
            .iter()
            .any(|e| *e != Effect::None)
            .then(|| effects.into_boxed_slice());
        Entry {
            path: path.into(),
            text: sql.into(),
            classified: Arc::new(classified),
            effects,
        }
    }
}

/// Classify a whole text (uncached).
pub(crate) fn analyze_text(cx: &Ctx<'_>, sql: &str) -> (Classified, Vec<Effect>) {
    let lexed = lex(sql, true);
    let (redacted, secrets) = redact(sql, &lexed.toks, lexed.unterminated);
    let fingerprint = fingerprint(sql, &lexed.toks);
    if lexed.backslash_in_plain_string && !same_structure(&lexed, &lex(sql, false)) {
        // Where a string ends depends on standard_conforming_strings, which a session could
        // have turned off: there are two readings of the text, so neither can be trusted. Redact
        // what either reading would call a secret.
        let (redacted_all, fingerprint) = redact_thoroughly(sql);
        let alt = lex(&redacted_all, false);
        let (redacted, more) = redact(&redacted_all, &alt.toks, alt.unterminated);
        let redacted = redact_raw(&redacted).into_owned();
        let mut f = Facts::unknown("string constants with backslashes (ambiguous quoting)");
        f.flags.has_secret = !secrets.is_empty() || !more.is_empty() || redacted_all != sql;
        return (
            Classified {
                statements: vec![f],
                fingerprint,
                redacted,
            },
            vec![Effect::None],
        );
    }
    let mut statements = Vec::new();
    let mut effects = Vec::new();
    let mut all_parsed = !lexed.unterminated;
    for range in split_statements(sql, &lexed.toks) {
        let toks = &lexed.toks[range.clone()];
        let (mut facts, effect, parsed) = classify_chunk(cx, sql, toks);
        all_parsed &= parsed;
        if secrets.iter().any(|i| range.contains(i)) {
            facts.flags.has_secret = true;
        }
        statements.push(facts);
        effects.push(effect);
    }
    if lexed.unterminated {
        // The server rejects an unterminated comment, string or quoted identifier; whatever came
        // before it in this text is not to be taken at face value either.
        let label = "unterminated comment, string or quoted identifier";
        match statements.last_mut() {
            Some(last) if last.kind != Kind::Unknown => {
                let had_secret = last.flags.has_secret;
                *last = Facts::unknown(format!("{} ({label})", last.label));
                last.flags.has_secret = had_secret;
            }
            Some(_) => {}
            None => {
                statements.push(Facts::unknown(label));
                effects.push(Effect::None);
            }
        }
    }
    // Text the server would not run as the tokens say (unparsable, unterminated) may hide a
    // password where the token rules do not look: redact it as raw text first, then by tokens,
    // and fingerprint what is left.
    let (redacted, fingerprint) = if !all_parsed {
        let (r, fp) = redact_thoroughly(sql);
        if r != redacted {
            for f in statements.iter_mut() {
                f.flags.has_secret = true;
            }
        }
        (r, fp)
    } else {
        (redacted, fingerprint)
    };
    (
        Classified {
            statements,
            fingerprint,
            redacted,
        },
        effects,
    )
}

/// Redaction for text whose tokens cannot be trusted: raw-text rules on the original, then the
/// token rules on the result, then raw again; the fingerprint is taken from the redacted text.
fn redact_thoroughly(sql: &str) -> (String, String) {
    let raw = redact_raw(sql);
    let l = lex(&raw, true);
    let (tok, _) = redact(&raw, &l.toks, l.unterminated);
    let out = redact_raw(&tok).into_owned();
    let l = lex(&out, true);
    let fp = redact_raw(&fingerprint(&out, &l.toks)).into_owned();
    (out, fp)
}

fn same_structure(a: &Lexed, b: &Lexed) -> bool {
    a.toks.len() == b.toks.len()
        && a.toks
            .iter()
            .zip(&b.toks)
            .all(|(x, y)| x.kind == y.kind && x.start == y.start && x.end == y.end)
}

/// Facts for one statement's tokens (no semicolons), and whether sqlparser understood it.
fn classify_chunk(cx: &Ctx<'_>, sql: &str, toks: &[Tok]) -> (Facts, Effect, bool) {
    let (Some(first), Some(last)) = (toks.first(), toks.last()) else {
        return (Facts::unknown("empty statement"), Effect::None, false);
    };
    let text = &sql[first.start..last.end];
    let unparsed = || {
        let (kind, flags) = token_kind(sql, toks);
        (
            Facts {
                kind,
                flags,
                ..Facts::unknown(token_label(sql, toks))
            },
            Effect::None,
            false,
        )
    };
    let dialect = PostgreSqlDialect {};
    let Ok(sp_toks) = Tokenizer::new(&dialect, text).tokenize_with_location() else {
        return unparsed();
    };
    if !skeletons_agree(sql, toks, &sp_toks) {
        return (
            Facts::unknown(format!("{} (ambiguous tokens)", token_label(sql, toks))),
            Effect::None,
            false,
        );
    }
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(sp_toks);
    let stmt = match parser.parse_statement() {
        Ok(s) if parser.peek_token().token == Token::EOF => s,
        _ => return unparsed(),
    };
    let (facts, effect) = classify_statement(cx, &stmt, &Source { text: sql, toks });
    (facts, effect, true)
}

/// The parts of a statement that decide what runs: identifiers/keywords (with their text) and
/// string constants (as such), in order.
#[derive(Debug, PartialEq, Eq)]
enum Skel<'a> {
    Word(std::borrow::Cow<'a, str>),
    Str,
}

fn skeletons_agree(sql: &str, mine: &[Tok], theirs: &[TokenWithSpan]) -> bool {
    let a = mine.iter().filter_map(|t| match t.kind {
        TokKind::Word => Some(Skel::Word(t.text(sql).into())),
        TokKind::QuotedIdent => {
            let raw = t.text(sql);
            let inner = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"'));
            Some(Skel::Word(match inner {
                Some(i) => i.replace("\"\"", "\"").into(),
                None => raw.into(),
            }))
        }
        TokKind::String => Some(Skel::Str),
        _ => None,
    });
    let b = theirs.iter().filter_map(|t| match &t.token {
        Token::Word(w) => Some(Skel::Word(w.value.as_str().into())),
        Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::TripleSingleQuotedString(_)
        | Token::TripleDoubleQuotedString(_)
        | Token::DollarQuotedString(_)
        | Token::SingleQuotedByteStringLiteral(_)
        | Token::DoubleQuotedByteStringLiteral(_)
        | Token::TripleSingleQuotedByteStringLiteral(_)
        | Token::TripleDoubleQuotedByteStringLiteral(_)
        | Token::SingleQuotedRawStringLiteral(_)
        | Token::DoubleQuotedRawStringLiteral(_)
        | Token::TripleSingleQuotedRawStringLiteral(_)
        | Token::TripleDoubleQuotedRawStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::QuoteDelimitedStringLiteral(_)
        | Token::NationalQuoteDelimitedStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::UnicodeStringLiteral(_)
        | Token::HexStringLiteral(_) => Some(Skel::Str),
        _ => None,
    });
    a.eq(b)
}
