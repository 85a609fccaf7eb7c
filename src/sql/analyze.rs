//! The uncached analysis of one text.
//!
//! The text is lexed once by the PostgreSQL-faithful lexer (split, fingerprint, redaction,
//! labels) and each statement is tokenized and parsed once by sqlparser. The two lexers must
//! agree on which parts of a statement are identifiers and which are strings or comments; if they
//! do not, the statement is `unknown` — a parser that saw a comment where the server sees code
//! must never decide what runs.

use std::ops::Range;
use std::sync::Arc;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

use super::coverage::unread;
use super::depth::too_deep;
use super::implied::{add_implied, operators};
use super::label::{last_name, token_kind, token_label};
use super::lexer::{lex, Lexed, Tok, TokKind};
use super::names::is_temp_schema;
use super::scope::Ctx;
use super::secret::{redact, redact_raw, redact_statements};
use super::statement::{classify_statement, Effect, Source};
use super::text::{fingerprint, split_statements};
use super::{Classified, Facts, Kind};

/// What a full analysis of one text found.
#[derive(Debug)]
pub(crate) struct Analysis {
    pub classified: Classified,
    /// One per statement.
    pub effects: Vec<Effect>,
    /// The facts depend on nothing but the text's fingerprint (words, operators, punctuation):
    /// another text with the same fingerprint, and no secret in it, has the same facts.
    pub by_fingerprint: bool,
}

/// Classify a whole text (uncached), already lexed with standard-conforming strings.
pub(crate) fn analyze_text(cx: &Ctx<'_>, sql: &str, lexed: &Lexed) -> Analysis {
    if lexed.backslash_in_plain_string && !same_structure(lexed, &lex(sql, false)) {
        return ambiguous_quoting(sql, lexed);
    }
    let mut statements = Vec::new();
    let mut effects = Vec::new();
    let mut ranges = Vec::new();
    let mut unparsed = Vec::new();
    cx.literal_sensitive.set(false);
    for range in split_statements(sql, &lexed.toks) {
        let toks = &lexed.toks[range.clone()];
        let (facts, effect, parsed) = classify_chunk(cx, sql, toks);
        if !parsed {
            unparsed.push(range.clone());
        }
        statements.push(facts);
        effects.push(effect);
        ranges.push(range);
    }
    let all_parsed = !lexed.unterminated && unparsed.is_empty();
    let (redacted, fingerprint, secrets) =
        redact_text(sql, lexed, &ranges, &unparsed, &mut statements);
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
    let by_fingerprint = all_parsed
        && !lexed.backslash_in_plain_string
        && !secrets
        && !cx.literal_sensitive.get()
        && effects.iter().all(|e| *e == Effect::None);
    Analysis {
        classified: Classified {
            statements: Arc::new(statements),
            fingerprint,
            redacted,
        },
        effects,
        by_fingerprint,
    }
}

/// Where a string ends depends on standard_conforming_strings, which a session could have
/// turned off: there are two readings of the text, so neither can be trusted. The text is held
/// whole, and what either reading would call a secret is redacted.
fn ambiguous_quoting(sql: &str, lexed: &Lexed) -> Analysis {
    let (_, secrets) = redact(sql, &lexed.toks, lexed.unterminated);
    let (redacted_all, fingerprint) = redact_thoroughly(sql);
    let alt = lex(&redacted_all, false);
    let (redacted, more) = redact(&redacted_all, &alt.toks, alt.unterminated);
    let redacted = redact_raw(&redacted).into_owned();
    let mut f = Facts::unknown("string constants with backslashes (ambiguous quoting)");
    f.flags.has_secret = !secrets.is_empty() || !more.is_empty() || redacted_all != sql;
    Analysis {
        classified: Classified {
            statements: Arc::new(vec![f]),
            fingerprint,
            redacted,
        },
        effects: vec![Effect::None],
        by_fingerprint: false,
    }
}

/// The redacted text, its fingerprint, and whether a token was a secret; marks the statements
/// (token `ranges`) that held one. Statements sqlparser could not read (`unparsed`) get the
/// raw-text rules as well, each on its own: the others keep their text in the audit, since what
/// runs must be what the audit shows.
fn redact_text(
    sql: &str,
    lexed: &Lexed,
    ranges: &[Range<usize>],
    unparsed: &[Range<usize>],
    statements: &mut [Facts],
) -> (String, String, bool) {
    let toks = &lexed.toks;
    let r = redact_statements(sql, toks, lexed.unterminated, unparsed);
    for (f, range) in statements.iter_mut().zip(ranges) {
        let span = toks[range.start].start..toks[range.end - 1].end;
        if any_within(&r.hits, range) || any_within(&r.masked_at, &span) {
            f.flags.has_secret = true;
        }
    }
    let secrets = !r.hits.is_empty();
    if lexed.unterminated {
        // The server runs none of a text it cannot lex, and where its last string or comment
        // ends is anyone's guess: the raw-text rules apply to all of it.
        let (text, fp) = redact_thoroughly(sql);
        if text != r.text {
            statements
                .iter_mut()
                .for_each(|f| f.flags.has_secret = true);
        }
        return (text, fp, secrets);
    }
    let fingerprint = if unparsed.is_empty() {
        fingerprint(sql, toks)
    } else {
        // Raw-text masks need not end at token boundaries: fingerprint what is left.
        let l = lex(&r.text, true);
        fingerprint(&r.text, &l.toks)
    };
    (r.text, fingerprint, secrets)
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

/// Whether the sorted `items` hold one within `range`.
fn any_within(items: &[usize], range: &Range<usize>) -> bool {
    let k = items.partition_point(|&i| i < range.start);
    items.get(k).is_some_and(|&i| i < range.end)
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
    // A statement this does not read may still rename one of the session's temporary
    // relations, if it is approved and runs.
    let renames = || {
        if cx.temp.is_empty() {
            Effect::None
        } else {
            renaming(sql, toks)
        }
    };
    let unparsed = || {
        let (mut kind, mut flags) = token_kind(sql, toks);
        let mut effect = Effect::None;
        if first.text(sql).eq_ignore_ascii_case("fetch") {
            match last_name(sql, toks) {
                Some(name) => effect = Effect::Fetch(name),
                None => kind = Kind::Unknown,
            }
        } else if let Some(created) = created_from_execute(cx, sql, toks) {
            // `CREATE TABLE t AS EXECUTE q` copies what a prepared statement returns, which
            // sqlparser does not read: held as unknown, never as a plain CREATE.
            kind = Kind::Unknown;
            flags.creates_table = true;
            effect = created;
        } else {
            effect = renames();
        }
        (
            Facts {
                kind,
                flags,
                ..Facts::unknown(token_label(sql, toks))
            },
            effect,
            false,
        )
    };
    if too_deep(sql, toks) {
        // Parsing it, walking it or even dropping its tree could overflow the stack, which
        // aborts the process: held unread (see `depth`).
        return (
            Facts::unknown(format!(
                "{} (expression nested too deeply to inspect)",
                token_label(sql, toks)
            )),
            renames(),
            false,
        );
    }
    let dialect = PostgreSqlDialect {};
    let Ok(sp_toks) = Tokenizer::new(&dialect, text).tokenize_with_location() else {
        return unparsed();
    };
    if !skeletons_agree(sql, toks, &sp_toks) {
        return (
            Facts::unknown(format!("{} (ambiguous tokens)", token_label(sql, toks))),
            renames(),
            false,
        );
    }
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(sp_toks);
    let stmt = match parser.parse_statement() {
        Ok(s) if parser.peek_token().token == Token::EOF => s,
        _ => return unparsed(),
    };
    cx.marks.clear();
    let (mut facts, mut effect) = classify_statement(cx, &stmt, &Source { text: sql, toks });
    if facts.kind != Kind::Unknown && unread(&stmt, &cx.marks) {
        facts = Facts::unknown(format!(
            "{} (a clause the classifier does not read)",
            facts.label
        ));
    }
    // The operators a statement writes call their functions wherever they stand, and a
    // prepared statement's operators run at each EXECUTE.
    let implied = operators(cx, sql, toks);
    add_implied(&mut facts, &implied);
    match &mut effect {
        Effect::Prepare { inner, .. } => add_implied(inner, &implied),
        Effect::Execute { params, .. } => add_implied(params, &implied),
        _ => {}
    }
    cx.marks.clear();
    (facts, effect, true)
}

/// For `CREATE [TEMP] TABLE name AS EXECUTE q`, what it does to the session's temporary
/// relations (`Effect::None` for a table made elsewhere); None for any other statement.
fn created_from_execute(cx: &Ctx<'_>, sql: &str, toks: &[Tok]) -> Option<Effect> {
    let is = |t: &Tok, w: &str| t.kind == TokKind::Word && t.text(sql).eq_ignore_ascii_case(w);
    let at = toks
        .windows(2)
        .position(|w| is(&w[0], "as") && is(&w[1], "execute"))?;
    let head = &toks[..at];
    let temp = head.iter().any(|t| {
        is(t, "temp") || is(t, "temporary") || t.text(sql).to_ascii_lowercase().contains("pg_temp")
    }) || cx.path.iter().any(|s| is_temp_schema(s));
    if !temp {
        return Some(Effect::None);
    }
    // The name before AS, unqualified: anything else loses the temporary names.
    let qualified = head.len() >= 2 && head[head.len() - 2].text(sql) == ".";
    Some(match last_name(sql, head) {
        Some(name) if !qualified => Effect::CreateTemp(name),
        _ => Effect::TempUnknown,
    })
}

/// What an unread statement may do to the session's temporary relations: `… RENAME TO name`
/// may give one of them that name (sqlparser reads neither `ALTER VIEW` nor `ALTER SEQUENCE`
/// renames), so the name is taken as temporary; any other RENAME may have done it under a
/// name that cannot be told from the tokens.
fn renaming(sql: &str, toks: &[Tok]) -> Effect {
    let is = |t: &Tok, w: &str| t.kind == TokKind::Word && t.text(sql).eq_ignore_ascii_case(w);
    let Some(at) = toks.iter().position(|t| is(t, "rename")) else {
        return Effect::None;
    };
    match &toks[at + 1..] {
        [to, _] if is(to, "to") => {
            last_name(sql, toks).map_or(Effect::TempUnknown, Effect::CreateTemp)
        }
        _ => Effect::TempUnknown,
    }
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
