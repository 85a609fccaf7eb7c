//! Comparing the snapshot with the server before a statement whose result the relay cannot
//! check is decided (see [`super::Facts::live_check`]).
//!
//! Two kinds of staleness matter. A relation the snapshot knows may have gained or lost
//! columns, or been replaced (its OID is gone). And a relation the snapshot does not know may
//! have been made on the server since, outside the gateway (a DBA's `CREATE VIEW emails AS
//! SELECT email FROM customers`): judged as unknown, its columns would be nobody's, and what
//! its definition reads or runs would be invisible. Either way the gateway reads the catalog
//! again and decides with it.

use std::collections::HashMap;

use super::catalog_load::{col, rows};
use super::{Attributes, Catalog, CatalogSource, LiveName, SqlError, TableRef};

/// The live columns of some relations, by OID (the list is filled in by [`Catalog::changed_on`]).
const Q_LIVE_ATTRIBUTES: &str = "SELECT a.attrelid::text, a.attnum::text \
FROM pg_catalog.pg_attribute a \
WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attrelid IN ";

/// Which of some relations exist, by schema and name (the list is filled in by
/// [`Catalog::changed_on`]). The kinds are those a snapshot holds, so that a name the snapshot
/// will not hold after a re-read either (a sequence, a composite type) is not "new" forever.
const Q_RELATIONS_EXIST: &str = "SELECT n.nspname, c.relname \
FROM pg_catalog.pg_class c \
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND (n.nspname, c.relname) IN ";

/// Every operator name, and every type by schema and name, for the snapshot (see
/// [`super::Facts::live_names`]).
pub(super) const Q_NAMES: &str = "SELECT DISTINCT 'operator', '', o.oprname \
FROM pg_catalog.pg_operator o \
UNION ALL \
SELECT 'type', n.nspname, t.typname \
FROM pg_catalog.pg_type t \
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
WHERE n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'";

/// Which of some operator names exist (the list is filled in by [`Catalog::changed_on`]).
const Q_OPERATORS_EXIST: &str =
    "SELECT o.oprname FROM pg_catalog.pg_operator o WHERE o.oprname IN ";

/// Which of some types exist, by schema and name (the list is filled in by
/// [`Catalog::changed_on`]).
const Q_TYPES_EXIST: &str = "SELECT n.nspname, t.typname \
FROM pg_catalog.pg_type t \
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
WHERE (n.nspname, t.typname) IN ";

/// A fingerprint of the catalog rows a snapshot is built from: per catalog, how many rows and
/// the sum of their inserting transaction ids. A row inserted, updated or deleted changes it
/// (`CREATE OR REPLACE VIEW` rewrites its `pg_rewrite` row); VACUUM and ANALYZE update
/// `pg_class` in place and do not. Temporary objects are left out, as the snapshot leaves them
/// out: sessions making temporary tables must not make the gateway re-read its catalog.
/// Columns are left out too: the relay and the live comparison already check them.
const Q_VERSION: &str = "SELECT pg_catalog.concat_ws(' ', \
(SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_catalog.pg_namespace \
 WHERE nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%'), \
(SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_catalog.pg_class \
 WHERE relpersistence <> 't'), \
(SELECT count(*) || ':' || coalesce(sum(r.xmin::text::bigint), 0) FROM pg_catalog.pg_rewrite r \
 JOIN pg_catalog.pg_class c ON c.oid = r.ev_class WHERE c.relpersistence <> 't'), \
(SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_catalog.pg_proc), \
(SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_catalog.pg_policy), \
(SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_catalog.pg_operator), \
(SELECT count(*) || ':' || coalesce(sum(t.xmin::text::bigint), 0) FROM pg_catalog.pg_type t \
 JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
 WHERE n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'), \
(SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_catalog.pg_constraint \
 WHERE contypid <> 0), \
(SELECT count(*) || ':' || coalesce(sum(xmin::text::bigint), 0) FROM pg_catalog.pg_cast))";

/// `s` as an SQL string constant that means `s` whatever `standard_conforming_strings` says:
/// an escape string with its backslashes and quotes doubled. The names come from the agent's
/// SQL, so they must never end the constant early.
fn literal(s: &str) -> String {
    format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

impl Catalog {
    /// Whether [`Catalog::changed_on`] has anything to compare for `tables` and `names`:
    /// attribute numbers of one of the tables, or, in a snapshot read from a server, a relation
    /// it does not know or any name to look up. Catalogs built by hand or from a file are never
    /// compared.
    pub fn worth_comparing(&self, tables: &[&TableRef], names: &[&LiveName]) -> bool {
        !self.attributes.is_empty()
            && (!names.is_empty()
                || tables.iter().any(|t| {
                    !self.relations.contains_key(*t)
                        || self.attributes.values().any(|a| a.table == **t)
                }))
    }

    /// Does the server now disagree with the snapshot about any of `tables`: a column added or
    /// dropped, the relation dropped or replaced (its OID is gone), or a relation the snapshot
    /// does not know now existing? Or does one of `names`, which it does not hold, exist now?
    /// At most four queries. Tables the snapshot knows without attribute numbers are not
    /// compared, nor is anything in a catalog built by hand.
    pub async fn changed_on<S: CatalogSource>(
        &self,
        src: &mut S,
        tables: &[&TableRef],
        names: &[&LiveName],
    ) -> Result<bool, SqlError> {
        if self.attributes.is_empty() {
            return Ok(false);
        }
        if self.names_exist(src, names).await? {
            return Ok(true);
        }
        let unknown: Vec<&TableRef> = tables
            .iter()
            .copied()
            .filter(|t| !self.relations.contains_key(*t) && !t.name.contains('\0'))
            .collect();
        if !unknown.is_empty() {
            let pairs: Vec<String> = unknown
                .iter()
                .map(|t| format!("({}, {})", literal(&t.schema), literal(&t.name)))
                .collect();
            let sql = format!("{Q_RELATIONS_EXIST}({})", pairs.join(", "));
            if let Some(row) = rows(src, &sql).await?.first() {
                tracing::info!(
                    relation = %format!("{}.{}", col(row, 0, "relations exist")?, col(row, 1, "relations exist")?),
                    "a relation the catalog snapshot does not know exists on the server"
                );
                return Ok(true);
            }
        }
        let known: HashMap<u32, &Attributes> = self
            .attributes
            .iter()
            .filter(|(_, a)| tables.contains(&&a.table))
            .map(|(oid, a)| (*oid, a))
            .collect();
        if known.is_empty() {
            return Ok(false);
        }
        let oids: Vec<String> = known.keys().map(u32::to_string).collect();
        let sql = format!("{Q_LIVE_ATTRIBUTES}({})", oids.join(", "));
        let mut live: HashMap<u32, Vec<i16>> = HashMap::new();
        for row in rows(src, &sql).await? {
            let oid = col(&row, 0, "live attributes")?;
            let num = col(&row, 1, "live attributes")?;
            let (Ok(oid), Ok(num)) = (oid.parse::<u32>(), num.parse::<i16>()) else {
                return Err(SqlError::CatalogRow {
                    query: "live attributes",
                    detail: format!("not an OID and attribute number: {oid:?}, {num:?}"),
                });
            };
            live.entry(oid).or_default().push(num);
        }
        Ok(known.iter().any(|(oid, snap)| {
            let mut now = live.remove(oid).unwrap_or_default();
            now.sort_unstable();
            now != snap.attnums
        }))
    }
}

impl Catalog {
    /// The server's catalog fingerprint now (see [`Catalog::version`]).
    pub async fn version_on<S: CatalogSource>(src: &mut S) -> Result<String, SqlError> {
        let rows = rows(src, Q_VERSION).await?;
        let row = rows.first().ok_or_else(|| SqlError::CatalogRow {
            query: "catalog version",
            detail: "no row".into(),
        })?;
        Ok(col(row, 0, "catalog version")?.to_owned())
    }

    /// Whether one of `names` (operators and types the snapshot does not hold) exists now.
    async fn names_exist<S: CatalogSource>(
        &self,
        src: &mut S,
        names: &[&LiveName],
    ) -> Result<bool, SqlError> {
        let mut operators = Vec::new();
        let mut types = Vec::new();
        for n in names {
            match n {
                LiveName::Operator(o) if !self.operator_names.contains(o) => {
                    operators.push(literal(o));
                }
                LiveName::Type(t) if !self.type_names.contains(t) => {
                    types.push(format!("({}, {})", literal(&t.schema), literal(&t.name)));
                }
                _ => {}
            }
        }
        for (list, query) in [(operators, Q_OPERATORS_EXIST), (types, Q_TYPES_EXIST)] {
            if list.is_empty() {
                continue;
            }
            let sql = format!("{query}({})", list.join(", "));
            if let Some(row) = rows(src, &sql).await?.first() {
                let found: Vec<&str> = row.iter().flatten().map(String::as_str).collect();
                tracing::info!(
                    name = %found.join("."),
                    "an operator or type the catalog snapshot does not know exists on the server"
                );
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::literal;

    #[test]
    fn literals_cannot_be_ended_early() {
        assert_eq!(literal("plain"), "E'plain'");
        assert_eq!(literal("o'brien"), "E'o''brien'");
        assert_eq!(literal("a\\"), "E'a\\\\'");
        assert_eq!(
            literal("x\\'); DROP TABLE t; --"),
            "E'x\\\\''); DROP TABLE t; --'"
        );
    }
}
