//! Calls a statement makes without naming a function: the functions behind the user-defined
//! operators it writes, and those that converting a value to a type it names runs (a domain's
//! CHECK constraints, a cast's function). The snapshot lists both (`catalog_runs`); here a
//! statement is judged as calling them.
//!
//! Operators are found in the statement's tokens rather than in sqlparser's tree: which
//! operator `a ~~~ b` means is decided by the server's scanner and then by the operand types,
//! and sqlparser hands some names over as operators of its own (`<=>`, `~~`), others as custom
//! ones, and spells neither the way the catalog does. The tokens are split exactly where the
//! server's scanner splits them ([`scanned_operators`]), and every user-defined operator of a
//! written name counts, since the operand types that choose among them are not known here.

use sqlparser::ast::{ArrayElemTypeDef, DataType};

use super::functions::{FunctionPolicy, FunctionVerdict};
use super::lexer::{Tok, TokKind};
use super::names::{effective_path, fold_name};
use super::scope::Ctx;
use super::{Catalog, Facts, FunctionRef, LiveName, TableRef};

/// The characters whose presence lets an operator name end in `+` or `-` (scan.l).
const NON_SQL_OP_CHARS: &[u8] = b"~!@#^&|`?%";

/// The operator names the server's scanner makes of one run of operator characters (one
/// `TokKind::Op` token of our lexer, which already stops at `--` and `/*`).
///
/// The scanner's rule: a name of several characters cannot end in `+` or `-` unless it holds
/// one of `~ ! @ # ^ & | ` ? %`; otherwise the trailing `+`/`-` are given back and scanned as
/// operators of their own. So `=-1` is `=` then `-`, while `?-` stays one name.
pub(crate) fn scanned_operators(run: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = run;
    while !rest.is_empty() {
        let b = rest.as_bytes();
        let mut n = b.len();
        if n > 1
            && matches!(b[n - 1], b'+' | b'-')
            && !b[..n - 1].iter().any(|c| NON_SQL_OP_CHARS.contains(c))
        {
            while n > 1 && matches!(b[n - 1], b'+' | b'-') {
                n -= 1;
            }
        }
        names.push(&rest[..n]);
        rest = &rest[n..];
    }
    names
}

/// What a statement's own text implies it calls, and the names it uses that the snapshot does
/// not hold (see [`Facts::live_names`]).
#[derive(Debug, Default)]
pub(crate) struct Implied {
    pub calls: Vec<FunctionVerdict>,
    pub unknown: Vec<LiveName>,
}

/// The calls behind the user-defined operators written in `toks`, judged by the policy, and
/// the operator names the snapshot does not hold.
pub(crate) fn operators(cx: &Ctx<'_>, sql: &str, toks: &[Tok]) -> Implied {
    let cat = cx.catalog;
    if cat.operators.is_empty() && cat.operator_names.is_empty() {
        return Implied::default();
    }
    let names: Vec<&str> = toks
        .iter()
        .filter(|t| t.kind == TokKind::Op && t.text(sql).bytes().all(is_operator_char))
        .flat_map(|t| scanned_operators(t.text(sql)))
        .filter(|name| *name != "=>")
        .map(|name| if name == "!=" { "<>" } else { name })
        .collect();
    let behind = names.iter().filter_map(|n| cat.operators.get(*n)).flatten();
    let mut unknown = Vec::new();
    if !cat.operator_names.is_empty() {
        for n in names.iter().filter(|n| !cat.operator_names.contains(**n)) {
            let name = LiveName::Operator((*n).to_owned());
            if !unknown.contains(&name) {
                unknown.push(name);
            }
        }
    }
    Implied {
        calls: judged(cx.functions, cat, behind),
        unknown,
    }
}

/// The characters operator names are made of (scan.l's `op_chars`). `=>` (a named argument)
/// and runs with `:` in them (`::`, `:=`) are syntax, not operators.
fn is_operator_char(c: u8) -> bool {
    b"~!@#^&|`?+-*/%<>=".contains(&c)
}

/// The policy's verdicts on calls to `functions`, once each.
pub(crate) fn judged<'f>(
    policy: &FunctionPolicy,
    catalog: &Catalog,
    functions: impl Iterator<Item = &'f FunctionRef>,
) -> Vec<FunctionVerdict> {
    let mut calls: Vec<FunctionVerdict> = Vec::new();
    for f in functions {
        let parts = [f.schema.clone(), f.name.clone()];
        let v = policy.verdict(catalog, &[], &parts);
        if !calls.contains(&v) {
            calls.push(v);
        }
    }
    calls
}

/// The calls converting a value to `ty` makes, judged by the policy. An unqualified name
/// counts under every schema of the search path that has it: the first one is PostgreSQL's
/// choice, but a type the snapshot does not list may stand before it. A type name sqlparser
/// does not know as a built-in that the snapshot does not hold under any of those schemas is
/// to be looked up on the server.
pub(crate) fn conversions(cx: &Ctx<'_>, ty: &DataType) -> Implied {
    let cat = cx.catalog;
    if cat.types.is_empty() && cat.type_names.is_empty() {
        return Implied::default();
    }
    let Some(parts) = type_name(ty) else {
        return Implied::default();
    };
    let candidates: Vec<TableRef> = match parts.as_slice() {
        [name] => effective_path(cx.path)
            .map(|s| TableRef {
                schema: s.to_owned(),
                name: name.clone(),
            })
            .collect(),
        [.., schema, name] => vec![TableRef {
            schema: schema.clone(),
            name: name.clone(),
        }],
        [] => Vec::new(),
    };
    let runs = candidates
        .iter()
        .filter_map(|t| cat.types.get(&t.to_string()))
        .flatten();
    let calls = judged(cx.functions, cat, runs);
    let unknown = if !cat.type_names.is_empty()
        && names_user_type(ty)
        && !candidates.iter().any(|t| cat.type_names.contains(t))
    {
        candidates.into_iter().map(LiveName::Type).collect()
    } else {
        Vec::new()
    };
    Implied { calls, unknown }
}

/// Whether a type in a cast must be read by the analysis (see `coverage`): any the catalog
/// may list, which is any sqlparser does not know as a built-in.
pub(crate) fn names_user_type(ty: &DataType) -> bool {
    match ty {
        DataType::Custom(..) => true,
        DataType::Array(elem) => element(elem).is_some_and(names_user_type),
        _ => false,
    }
}

/// Records what `implied` found in `facts`, as the analysis records a call it reads.
pub(crate) fn add_implied(facts: &mut Facts, implied: &Implied) {
    add_calls(facts, &implied.calls);
    for n in &implied.unknown {
        if !facts.live_names.contains(n) {
            facts.live_names.push(n.clone());
        }
    }
}

/// Records `calls` in `facts`, as the analysis records a call it reads.
pub(crate) fn add_calls(facts: &mut Facts, calls: &[FunctionVerdict]) {
    for c in calls {
        if !c.safe {
            facts.flags.unsafe_function = true;
        }
        if !facts.functions.contains(&c.qualified) {
            facts.functions.push(c.qualified.clone());
        }
    }
}

fn element(elem: &ArrayElemTypeDef) -> Option<&DataType> {
    match elem {
        ArrayElemTypeDef::AngleBracket(t)
        | ArrayElemTypeDef::SquareBracket(t, _)
        | ArrayElemTypeDef::Parenthesis(t)
        | ArrayElemTypeDef::Qualified(t, _) => Some(t),
        ArrayElemTypeDef::None => None,
    }
}

/// The folded name of the type a value is converted to (an array's element type: converting
/// to `d[]` converts each element to `d`). A type sqlparser knows by a name of its own is
/// looked up by the first word it prints (`datetime`, `string`): PostgreSQL has no such
/// built-in, so a domain of that name is what the server would use.
fn type_name(ty: &DataType) -> Option<Vec<String>> {
    match ty {
        DataType::Custom(name, _) => fold_name(name),
        DataType::Array(elem) => element(elem).and_then(type_name),
        other => {
            let printed = other.to_string().to_ascii_lowercase();
            let word = printed
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()?;
            (!word.is_empty()).then(|| vec![word.to_owned()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_are_split_where_the_server_splits_them() {
        let cases: &[(&str, &[&str])] = &[
            ("~~~", &["~~~"]),
            ("=-", &["=", "-"]),
            ("<=-+", &["<=", "-", "+"]),
            ("?-", &["?-"]),
            ("@-@", &["@-@"]),
            ("!#-", &["!#-"]),
            ("*-", &["*", "-"]),
            ("+", &["+"]),
            ("--", &["-", "-"]),
            ("<%", &["<%"]),
        ];
        for (run, want) in cases {
            assert_eq!(scanned_operators(run), *want, "{run}");
        }
    }
}
