//! Some values are secret only by the call they are given to: the value argument of
//! `set_config` with a password setting, or constants that `||` and `concat` join into one
//! connection string. The key and its value then sit in different tokens, and only the call's
//! argument list ties them together.

use super::constant::{constant_end, is_escape_char, uescape};
use super::KEY;
use crate::sql::lexer::{Tok, TokKind};
use crate::sql::quoted::decode;

/// The argument a token is directly in: the `(` of the call, and which argument (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Arg {
    open: usize,
    index: usize,
}

/// For each token, the parenthesized list it is directly in, if any.
pub(super) fn call_args(toks: &[Tok]) -> Vec<Option<Arg>> {
    let mut stack: Vec<Arg> = Vec::new();
    let mut out = Vec::with_capacity(toks.len());
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            TokKind::LParen => {
                out.push(stack.last().copied());
                stack.push(Arg { open: i, index: 0 });
            }
            TokKind::RParen => {
                stack.pop();
                out.push(stack.last().copied());
            }
            TokKind::Comma => {
                out.push(stack.last().copied());
                if let Some(a) = stack.last_mut() {
                    a.index += 1;
                }
            }
            _ => out.push(stack.last().copied()),
        }
    }
    out
}

/// The function whose argument list opens at token `open`, lowercased.
fn callee(text: &str, toks: &[Tok], open: usize) -> Option<String> {
    let t = toks.get(open.checked_sub(1)?)?;
    match t.kind {
        TokKind::Word => Some(t.text(text).to_ascii_lowercase()),
        TokKind::QuotedIdent => Some(t.text(text).trim_matches('"').to_owned()),
        _ => None,
    }
}

/// Token `i` is in the value argument of `set_config('…password…', value, …)`: the rule that
/// makes `SET app.password = '…'` a secret, for the function that does the same.
pub(super) fn is_setting_value(text: &str, toks: &[Tok], args: &[Option<Arg>], i: usize) -> bool {
    let Some(Arg { open, index: 1 }) = args[i] else {
        return false;
    };
    let name = toks.get(open + 1).filter(|t| t.kind == TokKind::String);
    let esc = uescape(text, toks, open + 1);
    let named = name.is_some_and(|t| {
        let raw = t.text(text);
        decode(raw, esc)
            .map_or(raw.to_owned(), |d| d.value)
            .to_ascii_lowercase()
            .contains(KEY)
    });
    named
        && toks
            .get(constant_end(text, toks, open + 1) + 1)
            .map(|t| t.kind)
            == Some(TokKind::Comma)
        && callee(text, toks, open).as_deref() == Some("set_config")
}

/// Token `j` and token `i` (both string constants or parameters, `j` before `i`) are parts of
/// one value: written next to each other (a continued constant), joined by `||`, or consecutive
/// arguments of `concat`.
pub(super) fn joined(text: &str, toks: &[Tok], args: &[Option<Arg>], j: usize, i: usize) -> bool {
    let end = constant_end(text, toks, j);
    if i == end + 1 {
        return toks[j].kind == TokKind::String && toks[i].kind == TokKind::String;
    }
    if i != end + 2 {
        return false;
    }
    let between = &toks[end + 1];
    (between.kind == TokKind::Op && between.text(text) == "||")
        || (between.kind == TokKind::Comma
            && args[i].is_some()
            && args[i].map(|a| a.open) == args[j].map(|a| a.open)
            && args[i].and_then(|a| callee(text, toks, a.open)).as_deref() == Some("concat"))
}

/// Runs of string constants that make one value (see [`joined`]), leaving out those masked whole.
pub(super) fn chains(
    text: &str,
    toks: &[Tok],
    args: &[Option<Arg>],
    whole: &[bool],
) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if t.kind != TokKind::String || whole[i] || is_escape_char(text, toks, i) {
            continue;
        }
        if cur.last().is_some_and(|&j| !joined(text, toks, args, j, i)) {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(i);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
