//! A bound on how deeply a statement's syntax tree can nest, read from its tokens alone.
//!
//! sqlparser limits its own recursion, but it builds chains of binary operators (`1+1+…`,
//! `a OR b OR …`, `x::t::t…`, `x IS NULL IS NULL…`) and of set operations (`… UNION …`) in a
//! loop, each link one level deeper on the left, so the limit never sees them. Everything that
//! walks the tree afterwards — the classifier, sqlparser's visitor and `Display`, even dropping
//! the tree — recurses once per level. A long enough chain (some 200 KB of `+1`) overflows the
//! thread's stack, and a stack overflow aborts the whole process: the classifier's panic guard
//! cannot catch it. A statement whose bound is too high is therefore never parsed; it is held
//! as unknown, as the server would refuse most such text anyway ("stack depth limit exceeded").
//!
//! The bound: within each parenthesis (or bracket) level, every operator and operator keyword
//! of a comma-separated item counts, plus the deepest group nested in that item; set operations
//! count for the whole level, since a comma does not separate them (`SELECT 1, 2 UNION SELECT
//! 1, 2 UNION …`). Comma-separated siblings do not add up, so long flat statements (a big
//! `INSERT … VALUES` list, an `IN (…)` list, a wide select list) stay far below the limit. The
//! bound overestimates: operators that do not nest (the branches of one `CASE`) count too,
//! which only makes a statement with thousands of them held rather than parsed.

use super::lexer::{Tok, TokKind};

/// The highest bound a statement may have and still be parsed.
///
/// Measured on a 2 MiB stack (Rust's default for spawned threads, and tokio's for its
/// workers), in bytes of stack per link of a chain: `+`, AND, OR, `||`, `->`, BETWEEN about 60
/// in both release and debug builds; `::` casts about 100 in release and 430 in debug builds
/// (the column-name analysis recurses through them); set operations about 480 and 940. Without
/// this check, classifying 32,500 chained `+` overflowed that stack in either build, and fewer
/// than 5,000 casts did in a debug build. PostgreSQL 15, with its default `max_stack_depth` of
/// 2MB, refuses `1+1+…` beyond about 4,000 terms and casts beyond some 10,000 (it flattens
/// AND/OR chains, and ran 100,000 terms). At 5,000 the deepest tree let through (2,500 casts,
/// each counting 2) takes about half of that stack in a debug build and a sixth in release,
/// while everything the server runs passes but long chains of casts and of AND/OR (some 2,500
/// `a = 1 OR …` terms pass).
pub(crate) const MAX_NESTING: usize = 5_000;

/// What one set operation counts: a level of `UNION` costs 8 to 18 times the stack of an
/// operator (see above), so at most 416 set operations pass (PostgreSQL 15 runs about 7,000).
const SET_OPERATION_WEIGHT: usize = 12;

/// Words that join two operands (or follow one) and so make the tree one level deeper on the
/// left: sqlparser's infix keywords for any dialect, and `NOT`, `ESCAPE` for good measure.
const OPERATOR_WORDS: &[&str] = &[
    "and", "or", "xor", "not", "is", "isnull", "notnull", "in", "between", "like", "ilike",
    "similar", "rlike", "regexp", "match", "glob", "member", "overlaps", "operator", "div",
    "collate", "at", "escape",
];

const SET_OPERATION_WORDS: &[&str] = &["union", "except", "intersect", "minus"];

/// True when the statement's tokens may nest too deeply to parse and walk safely.
pub(crate) fn too_deep(text: &str, toks: &[Tok]) -> bool {
    nesting_bound(text, toks) > MAX_NESTING
}

/// One open parenthesis or bracket level (the statement itself is the outermost).
#[derive(Debug, Default)]
struct Level {
    /// Set operations anywhere at this level.
    set_ops: usize,
    /// Operators of the current comma-separated item.
    ops: usize,
    /// The costliest group nested in the current item.
    child: usize,
    /// The costliest item already closed by a comma.
    items: usize,
}

impl Level {
    fn end_item(&mut self) {
        self.items = self.items.max(self.ops + self.child);
        self.ops = 0;
        self.child = 0;
    }

    fn cost(mut self) -> usize {
        self.end_item();
        self.items + self.set_ops * SET_OPERATION_WEIGHT
    }
}

/// An upper bound on the nesting of the statement's syntax tree (see the module docs).
pub(crate) fn nesting_bound(text: &str, toks: &[Tok]) -> usize {
    let mut levels = vec![Level::default()];
    for t in toks {
        match t.kind {
            TokKind::LParen => levels.push(Level::default()),
            TokKind::RParen => close(&mut levels),
            TokKind::Comma => top(&mut levels).end_item(),
            TokKind::Op => match t.text(text) {
                // A subscript is one more level, and what is inside it another group.
                "[" => {
                    top(&mut levels).ops += 1;
                    levels.push(Level::default());
                }
                "]" => close(&mut levels),
                // A run of operator characters may be several operators to sqlparser (`+-`).
                op => top(&mut levels).ops += op.len(),
            },
            TokKind::Word => {
                let w = t.text(text);
                if is_one_of(w, SET_OPERATION_WORDS) {
                    top(&mut levels).set_ops += 1;
                } else if is_one_of(w, OPERATOR_WORDS) {
                    top(&mut levels).ops += 1;
                }
            }
            _ => {}
        }
    }
    while levels.len() > 1 {
        close(&mut levels);
    }
    levels.pop().map_or(0, Level::cost)
}

fn top(levels: &mut [Level]) -> &mut Level {
    levels
        .last_mut()
        .expect("the outermost level is never closed")
}

/// Close the innermost level: its cost, plus one for the group itself, is a candidate for the
/// item it sits in. An unmatched closing token is ignored (the parser refuses the text anyway).
fn close(levels: &mut Vec<Level>) {
    if levels.len() < 2 {
        return;
    }
    let inner = levels.pop().map_or(0, Level::cost) + 1;
    let outer = top(levels);
    outer.child = outer.child.max(inner);
}

fn is_one_of(word: &str, list: &[&str]) -> bool {
    list.iter().any(|k| k.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::super::lexer::lex;
    use super::*;

    fn bound(sql: &str) -> usize {
        nesting_bound(sql, &lex(sql, true).toks)
    }

    #[test]
    fn operators_of_one_item_add_up() {
        assert_eq!(bound("SELECT 1"), 0);
        assert_eq!(bound("SELECT 1+1+1"), 2);
        assert_eq!(bound("SELECT 'x'::text::text"), 4);
        assert_eq!(bound("SELECT a FROM t WHERE a = 1 OR a IS NULL"), 3);
        // `+-` may be two operators to sqlparser.
        assert_eq!(bound("SELECT 1+-1"), 2);
        let at_limit = format!("SELECT 1{}", "+1".repeat(MAX_NESTING));
        assert!(!too_deep(&at_limit, &lex(&at_limit, true).toks));
        let over = format!("{at_limit}+1");
        assert!(too_deep(&over, &lex(&over, true).toks));
    }

    #[test]
    fn commas_separate_siblings() {
        assert_eq!(bound("SELECT 1+1, 2+2+2, 3"), 2);
        assert_eq!(
            bound("INSERT INTO t VALUES (1, 'a'::text), (2, 'b'::text)"),
            3
        );
        assert_eq!(bound("SELECT ARRAY[1+1, 2+2] + 1"), 4);
    }

    #[test]
    fn groups_add_to_the_item_they_sit_in_wherever_it_continues() {
        // The operators after the group nest above it as well as those before.
        assert_eq!(bound("SELECT (1+1+1) + 1 + 1"), 2 + 1 + 2);
        assert_eq!(bound("SELECT f(1, 2+2) + 1"), 1 + 1 + 1);
        assert_eq!(bound("SELECT ((1+1))"), 1 + 2);
        // A comma inside brackets does not reset the item the brackets sit in.
        let chain: String = "+ARRAY[0, 1][1]".repeat(100);
        assert!(bound(&format!("SELECT 0{chain}")) >= 300);
    }

    #[test]
    fn set_operations_count_across_commas() {
        let chain = " UNION SELECT 1, 2".repeat(10);
        assert_eq!(
            bound(&format!("SELECT 1, 2{chain}")),
            10 * SET_OPERATION_WEIGHT
        );
        assert_eq!(
            bound("SELECT 1 UNION (SELECT 1 UNION SELECT 2)"),
            SET_OPERATION_WEIGHT + 1 + SET_OPERATION_WEIGHT
        );
    }

    #[test]
    fn unbalanced_text_is_bounded_too() {
        assert_eq!(bound("SELECT (1+1"), 1 + 1);
        assert_eq!(bound("SELECT 1+1)) + 1"), 2);
        let parens = "(".repeat(MAX_NESTING + 1);
        assert!(too_deep(&parens, &lex(&parens, true).toks));
    }
}
