//! A driver sends a value as a bound parameter, not in the text: the text only says where it
//! goes. A parameter in a secret's place is as secret as the literal it stands for, and one
//! that holds credentials loses them as a constant's value would.

use super::args::{call_args, is_setting_value, joined};
use super::constant::{is_escape_char, uescape};
use super::raw::looks_like_credentials;
use super::{follows_key, redact_value, INNER_MASK, KEY};
use crate::sql::lexer::{lex, Tok, TokKind};
use crate::sql::quoted::decode;

/// The parameters (`$n`, numbered from 1) that `sql` puts where a secret goes: after a password
/// key (`PASSWORD $1`, `password = $1`), as the value of a password setting given to
/// `set_config`, or joined (`||`, `concat`) to a constant ending in `password=`. A driver sends
/// the value there, and it is as secret as the literal it stands for.
pub fn secret_params(sql: &str) -> Vec<usize> {
    // Every rule needs the key in the text, or an escape that could spell it inside a constant
    // (`E'…\…'`, `U&'…'`): the usual statement is not lexed a second time per execution.
    let spelled = sql
        .as_bytes()
        .windows(KEY.len())
        .any(|w| w.eq_ignore_ascii_case(KEY.as_bytes()));
    if !spelled && !sql.contains(['\\', '&']) {
        return Vec::new();
    }
    let l = lex(sql, true);
    let toks = &l.toks;
    let args = call_args(toks);
    let mut out: Vec<usize> = toks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.kind == TokKind::Param)
        .filter(|&(i, _)| {
            follows_key(sql, toks, i)
                || is_setting_value(sql, toks, &args, i)
                || key_constant_before(sql, toks, i).is_some_and(|j| {
                    joined(sql, toks, &args, j, i)
                        && ends_with_key(sql, &toks[j], uescape(sql, toks, j))
                })
        })
        .filter_map(|(_, t)| t.text(sql)[1..].parse().ok())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The constant an operator or comma before token `i` follows: two tokens back, or four when
/// it ends in a `UESCAPE` clause.
fn key_constant_before(text: &str, toks: &[Tok], i: usize) -> Option<usize> {
    let j = i.checked_sub(2)?;
    if is_escape_char(text, toks, j) {
        return Some(j - 2);
    }
    Some(j)
}

/// A string constant whose value ends with a password key and its separator (`'… password='`):
/// what follows it is the password.
fn ends_with_key(text: &str, t: &Tok, esc: Option<char>) -> bool {
    if t.kind != TokKind::String {
        return false;
    }
    let raw = t.text(text);
    let value = decode(raw, esc).map_or(raw.to_owned(), |d| d.value);
    value
        .trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '=' | ':' | '\''))
        .to_ascii_lowercase()
        .ends_with(KEY)
}

/// A bound parameter's value as it may be audited and shown: None when it carries no secret.
/// One in a secret's place (see [`secret_params`]) is masked whole; one that holds credentials
/// (a connection string, a URL with a password, SQL with a `PASSWORD` clause) loses them by the
/// rules a string constant's value follows, or whole if they cannot be narrowed.
pub fn redact_param(value: &str, secret_place: bool) -> Option<String> {
    if secret_place {
        return Some(INNER_MASK.to_owned());
    }
    if !looks_like_credentials(value) {
        return None;
    }
    let r = redact_value(value, 1);
    Some(if r == value { INNER_MASK.to_owned() } else { r })
}
