//! The code a read runs without naming it: functions in a view's definition and in the
//! row-level-security policies of the tables it reads.
//!
//! `SELECT * FROM v` names no function, but if `v` is `SELECT id, log_access(id) FROM t` the
//! server calls `log_access` once per row, and whatever that function does (insert, delete,
//! open cursors, read other tables) happens under a statement that looks like a plain read.
//! Row-level-security policies do the same for tables: `USING (may_see(id))` runs `may_see`
//! for every row a SELECT scans. The snapshot therefore records, per relation, the functions
//! PostgreSQL itself lists as dependencies of the view's `_RETURN` rule and of the table's
//! SELECT policies (`pg_depend`, which also names the function behind each operator), so that
//! the classifier judges them as if the statement had called them.

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
    let undeclared = FunctionPolicy::default();
    let mut runs: HashMap<TableRef, BTreeSet<FunctionRef>> = HashMap::new();
    for (t, f) in own {
        let parts = [f.schema.clone(), f.name.clone()];
        if !undeclared.verdict(cat, &[], &parts).safe {
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
