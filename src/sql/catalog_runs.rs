//! The code a statement runs without naming it: functions in a view's definition and in the
//! row-level-security policies of the tables it reads, behind the operators it writes, and in
//! the conversions to the types it names.
//!
//! `SELECT * FROM v` names no function, but if `v` is `SELECT id, log_access(id) FROM t` the
//! server calls `log_access` once per row, and whatever that function does (insert, delete,
//! open cursors, read other tables) happens under a statement that looks like a plain read.
//! Row-level-security policies do the same for tables: `USING (may_see(id))` runs `may_see`
//! for every row a SELECT scans. The snapshot therefore records, per relation, the functions
//! PostgreSQL itself lists as dependencies of the view's `_RETURN` rule and of the table's
//! SELECT policies (`pg_depend`, which also names the function behind each operator), so that
//! the classifier judges them as if the statement had called them.
//!
//! Operators and types hide calls the same way: `a ~~~ b` calls the function behind `~~~`, and
//! `'x'::checked_text` runs the CHECK constraint of that domain. The snapshot lists both, and
//! the classifier (`sql::implied`) judges a statement that writes such an operator or names
//! such a type as calling those functions.

use std::collections::{BTreeSet, HashMap};

use super::functions::FunctionPolicy;
use super::{Catalog, FunctionRef, RelationKind, TableRef};

/// `(relation schema, relation name, function schema, function name)` for every function a
/// view's SELECT rule or a row-security-enabled table's SELECT (or ALL) policy depends on,
/// directly or through an operator. System schemas are left out: their views are judged by
/// name (see `names::SENSITIVE_RELATIONS`), and their dependencies on built-ins are not
/// recorded by the server anyway.
pub(super) const Q_RUNS: &str = "SELECT n.nspname, c.relname, pn.nspname, p.proname \
FROM (SELECT r.ev_class AS rel, d.refclassid, d.refobjid \
 FROM pg_catalog.pg_rewrite r \
 JOIN pg_catalog.pg_class v ON v.oid = r.ev_class AND v.relkind = 'v' \
 JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass \
  AND d.objid = r.oid \
 WHERE r.ev_type = '1' \
 UNION \
 SELECT pol.polrelid, d.refclassid, d.refobjid \
 FROM pg_catalog.pg_policy pol \
 JOIN pg_catalog.pg_class t ON t.oid = pol.polrelid AND t.relrowsecurity \
 JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass \
  AND d.objid = pol.oid \
 WHERE pol.polcmd IN ('r', '*')) x \
JOIN pg_catalog.pg_class c ON c.oid = x.rel \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
JOIN pg_catalog.pg_proc p ON p.oid = CASE x.refclassid \
 WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN x.refobjid \
 WHEN 'pg_catalog.pg_operator'::pg_catalog.regclass THEN \
  (SELECT o.oprcode FROM pg_catalog.pg_operator o WHERE o.oid = x.refobjid)::pg_catalog.oid END \
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')";

/// Records on each relation the functions reading it runs: its own (from [`Q_RUNS`] rows,
/// `own`), and for a view those of every relation it reads (`deps`, view → relations), so that
/// a view over a view over a table with a row-security policy carries the policy's functions.
/// Functions harmless without any policy declaration (`lower`, `now`) are dropped here; the
/// rest are judged at classification time, against the policy then in force.
pub(super) fn attach(
    cat: &mut Catalog,
    own: Vec<(TableRef, FunctionRef)>,
    deps: &HashMap<TableRef, Vec<TableRef>>,
) {
    let mut runs: HashMap<TableRef, BTreeSet<FunctionRef>> = HashMap::new();
    for (t, f) in own {
        if harmful(cat, &f) {
            runs.entry(t).or_default().insert(f);
        }
    }
    // Views read views: propagate until nothing changes. Each round settles at least one more
    // level of nesting, so the number of views bounds the rounds (a cycle, which PostgreSQL
    // does not allow, would only stop there too).
    let views: Vec<&TableRef> = deps
        .keys()
        .filter(|v| {
            cat.relation(v)
                .is_some_and(|r| r.kind == RelationKind::View)
        })
        .collect();
    for _ in 0..=views.len() {
        let mut changed = false;
        for v in &views {
            let inherited: Vec<FunctionRef> = deps[*v]
                .iter()
                .filter(|d| d != v)
                .flat_map(|d| runs.get(d).into_iter().flatten().cloned())
                .collect();
            let mine = runs.entry((*v).clone()).or_default();
            for f in inherited {
                changed |= mine.insert(f);
            }
        }
        if !changed {
            break;
        }
    }
    for (t, fs) in runs {
        if let Some(rel) = cat.relations.get_mut(&t) {
            rel.runs = fs.into_iter().collect();
        }
    }
}

/// `(operator name, function schema, function name)` for the user-defined operators a statement
/// can reach by writing the operator's name, with the function each one calls.
///
/// Which operator a name means depends on its operands' types, which the gateway does not know.
/// A name no built-in operator has can only mean a user-defined one, so every such operator is
/// listed. A name built-ins share (`=` from an extension's type) is listed only when its function
/// is volatile: treating every comparison as a call to `citext_eq` would hold all of them, while
/// a volatile function behind `=` is what a write hidden in an operator looks like (PostgreSQL
/// refuses writes in non-volatile SQL and PL/pgSQL functions).
pub(super) const Q_OPERATORS: &str = "SELECT o.oprname, pn.nspname, p.proname \
FROM pg_catalog.pg_operator o \
JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace \
JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode \
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
AND (p.provolatile = 'v' OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_operator b \
 WHERE b.oprname = o.oprname AND b.oprnamespace = 'pg_catalog'::pg_catalog.regnamespace))";

/// What converting a value to a type can run, as rows `(type schema, type name, tag, schema,
/// name, type OID)`:
/// - tag `part`, for types outside the system schemas: a type a value of it is made of (a
///   domain's base type, an array's element, a composite's attribute types, a range's subtype);
/// - tag `code`, for the same types: a function the conversion calls (a domain's CHECK
///   constraints, directly or through an operator; the input function; casts to it that call a
///   function). Non-volatile built-ins are left out here to keep the answer small.
///
/// Casts to built-in types are not listed: one calling an extension's function (PostGIS's
/// `geometry` to `text`) runs only for values of the extension's type, and listing it under
/// `text` would make every domain over text look like a call to it.
///
/// `'x'::email_address` runs the domain's CHECK; `'(x)'::contact` runs the CHECK of each
/// attribute's domain. [`conversions`] follows the parts. The walk is done here rather than by
/// a recursive query, whose row estimate makes the server compile it (JIT) at every load.
pub(super) const Q_TYPES: &str = "SELECT tn.nspname, t.typname, 'part', sn.nspname, s.typname, \
t.oid::pg_catalog.text \
FROM pg_catalog.pg_type t \
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace \
CROSS JOIN LATERAL ( \
 SELECT t.typbasetype AS oid WHERE t.typtype = 'd' \
 UNION ALL SELECT t.typelem WHERE t.typelem <> 0 \
  AND t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc \
 UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a \
  WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped \
 UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid) x \
JOIN pg_catalog.pg_type s ON s.oid = x.oid \
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.typnamespace \
WHERE tn.nspname NOT IN ('pg_catalog', 'information_schema') \
UNION ALL \
SELECT tn.nspname, t.typname, 'code', pn.nspname, p.proname, t.oid::pg_catalog.text \
FROM (SELECT k.contypid AS typ, CASE d.refclassid \
  WHEN 'pg_catalog.pg_proc'::pg_catalog.regclass THEN d.refobjid \
  ELSE (SELECT o.oprcode FROM pg_catalog.pg_operator o WHERE o.oid = d.refobjid)::pg_catalog.oid \
  END AS fn \
 FROM pg_catalog.pg_constraint k \
 JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass \
  AND d.objid = k.oid AND d.refclassid IN ('pg_catalog.pg_proc'::pg_catalog.regclass, \
  'pg_catalog.pg_operator'::pg_catalog.regclass) \
 WHERE k.contypid <> 0 \
 UNION SELECT t.oid, t.typinput FROM pg_catalog.pg_type t \
 UNION SELECT c.casttarget, c.castfunc FROM pg_catalog.pg_cast c WHERE c.castmethod = 'f') y \
JOIN pg_catalog.pg_type t ON t.oid = y.typ \
JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace \
JOIN pg_catalog.pg_proc p ON p.oid = y.fn \
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace \
WHERE tn.nspname NOT IN ('pg_catalog', 'information_schema') \
AND NOT (pn.nspname = 'pg_catalog' AND p.provolatile <> 'v')";

/// Whether a function is worth recording: one a policy without declarations would not let run.
fn harmful(cat: &Catalog, f: &FunctionRef) -> bool {
    let parts = [f.schema.clone(), f.name.clone()];
    !FunctionPolicy::default().verdict(cat, &[], &parts).safe
}

/// Records [`Q_OPERATORS`] rows `(operator, function)` on the catalog.
pub(super) fn operators(cat: &mut Catalog, rows: Vec<(String, FunctionRef)>) {
    let mut by_name: HashMap<String, BTreeSet<FunctionRef>> = HashMap::new();
    for (op, f) in rows {
        if harmful(cat, &f) {
            by_name.entry(op).or_default().insert(f);
        }
    }
    cat.operators = by_name
        .into_iter()
        .map(|(op, fs)| (op, fs.into_iter().collect()))
        .collect();
}

/// One [`Q_TYPES`] row: a type (by name, and OID), and a part of it or a function converting
/// to it runs.
pub(super) struct TypeRow {
    pub ty: FunctionRef,
    pub oid: u32,
    pub is_part: bool,
    /// The part (a type) or the function.
    pub other: FunctionRef,
}

/// Records on the catalog, for each type outside the system schemas, the functions converting
/// a value to it runs: its own and those of every type it is made of, however deep.
pub(super) fn conversions(cat: &mut Catalog, rows: Vec<TypeRow>) {
    let mut parts: HashMap<FunctionRef, Vec<FunctionRef>> = HashMap::new();
    let mut code: HashMap<FunctionRef, Vec<FunctionRef>> = HashMap::new();
    let mut oids: HashMap<FunctionRef, u32> = HashMap::new();
    for row in rows {
        oids.insert(row.ty.clone(), row.oid);
        if row.is_part {
            parts.entry(row.ty).or_default().push(row.other);
        } else if harmful(cat, &row.other) {
            code.entry(row.ty).or_default().push(row.other);
        }
    }
    let mut types = HashMap::new();
    let mut type_oids = HashMap::new();
    let tops: BTreeSet<&FunctionRef> = parts
        .keys()
        .chain(code.keys())
        .filter(|t| !matches!(t.schema.as_str(), "pg_catalog" | "information_schema"))
        .collect();
    for top in tops {
        let mut seen = BTreeSet::from([top]);
        let mut todo = vec![top];
        let mut runs = BTreeSet::new();
        while let Some(t) = todo.pop() {
            runs.extend(code.get(t).into_iter().flatten().cloned());
            for p in parts.get(t).into_iter().flatten() {
                if seen.insert(p) {
                    todo.push(p);
                }
            }
        }
        if !runs.is_empty() {
            if let Some(oid) = oids.get(top) {
                type_oids.insert(*oid, top.to_string());
            }
            types.insert(top.to_string(), runs.into_iter().collect());
        }
    }
    cat.types = types;
    cat.type_oids = type_oids;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Volatility;

    fn t(name: &str) -> TableRef {
        TableRef {
            schema: "public".into(),
            name: name.into(),
        }
    }

    fn f(schema: &str, name: &str) -> FunctionRef {
        FunctionRef {
            schema: schema.into(),
            name: name.into(),
        }
    }

    /// `guarded` has a row-security policy calling `may_see`; `logged` calls `bump`; `outer`
    /// reads `logged` and `guarded` through `middle`; `plain` calls only `lower`.
    #[test]
    fn views_inherit_what_the_relations_they_read_run() {
        let mut cat = Catalog::builder()
            .table("public", "guarded", &["id"])
            .table("public", "base", &["id"])
            .view("public", "logged", &[("id", &["public.base.id"])])
            .view("public", "middle", &[("id", &["public.base.id"])])
            .view("public", "outer", &[("id", &["public.base.id"])])
            .view("public", "plain", &[("id", &["public.base.id"])])
            .function("public", "bump", Volatility::Volatile, false, "sql")
            .function("public", "may_see", Volatility::Stable, false, "plpgsql")
            .function(
                "pg_catalog",
                "lower",
                Volatility::Immutable,
                false,
                "internal",
            )
            .build();
        let own = vec![
            (t("guarded"), f("public", "may_see")),
            (t("logged"), f("public", "bump")),
            (t("plain"), f("pg_catalog", "lower")),
        ];
        let deps = HashMap::from([
            (t("outer"), vec![t("middle")]),
            (t("middle"), vec![t("logged"), t("guarded")]),
            (t("logged"), vec![t("base")]),
            (t("plain"), vec![t("base")]),
        ]);
        attach(&mut cat, own, &deps);
        let runs = |n: &str| cat.relation(&t(n)).expect(n).runs.clone();
        assert_eq!(runs("guarded"), vec![f("public", "may_see")]);
        assert_eq!(runs("logged"), vec![f("public", "bump")]);
        assert_eq!(
            runs("outer"),
            vec![f("public", "bump"), f("public", "may_see")]
        );
        assert_eq!(runs("middle"), runs("outer"));
        assert!(runs("plain").is_empty(), "lower is harmless");
        assert!(runs("base").is_empty());
    }
}
