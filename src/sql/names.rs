//! Identifier folding and name resolution against the catalog snapshot and a search_path.
//!
//! PostgreSQL folds unquoted identifiers to lower case and keeps quoted ones exactly, so
//! `Customers`, `customers` and `"customers"` are one table and `"Customers"` is another.
//! Unqualified names are looked up schema by schema along the search_path, with `pg_catalog`
//! searched first unless the path names it explicitly somewhere else.

use sqlparser::ast::{Ident, ObjectName};

use super::{Catalog, TableRef};

/// Schemas whose relations describe the database rather than hold its data.
pub(crate) const SYSTEM_SCHEMAS: &[&str] = &["pg_catalog", "information_schema"];

/// System relations that expose data values, other sessions' SQL text or credentials. Reading
/// them is treated as an export, not as a harmless catalog read: `pg_stats.most_common_vals`
/// holds sample values of every column, `pg_stat_activity.query` other sessions' statements,
/// `pg_subscription.subconninfo` connection strings with passwords.
const SENSITIVE_RELATIONS: &[&str] = &[
    "pg_statistic",
    "pg_statistic_ext_data",
    "pg_stats",
    "pg_stats_ext",
    "pg_stats_ext_exprs",
    "pg_stat_activity",
    "pg_stat_statements",
    "pg_stat_statements_info",
    "pg_authid",
    "pg_shadow",
    "pg_user_mapping",
    "pg_user_mappings",
    "user_mapping_options",
    "pg_subscription",
    "pg_largeobject",
    "pg_hba_file_rules",
    "pg_ident_file_mappings",
    "pg_file_settings",
];

/// Fold one identifier the way the server does: unquoted → ASCII lower case.
pub(crate) fn fold(ident: &Ident) -> String {
    let mut name = if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_ascii_lowercase()
    };
    truncate_identifier(&mut name);
    name
}

/// The longest identifier PostgreSQL keeps, in bytes (`NAMEDATALEN - 1`).
pub(crate) const MAX_IDENTIFIER_BYTES: usize = 63;

/// PostgreSQL cuts every identifier to [`MAX_IDENTIFIER_BYTES`] (at a character boundary) as
/// it reads it, so a longer spelling names the same table or column as its first 63 bytes:
/// unshortened, it would be a name the catalog and the policy's patterns never match.
pub(crate) fn truncate_identifier(name: &mut String) {
    if name.len() > MAX_IDENTIFIER_BYTES {
        let mut end = MAX_IDENTIFIER_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
}

/// Fold every part of a dotted name; `None` if a part is not a plain identifier. sqlparser
/// also takes `'…'` (and other dialects' quotes) where a name goes (`COPY 'x' TO STDOUT`);
/// PostgreSQL does not, and such a "name" is a string constant, which the fingerprint does not
/// keep: it must not become a relation the cached facts would then name.
pub(crate) fn fold_name(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|p| {
            p.as_ident()
                .filter(|id| matches!(id.quote_style, None | Some('"')))
                .map(fold)
        })
        .collect::<Option<Vec<_>>>()
}

/// sqlparser reads PostgreSQL's `ONLY t` (no inheritance children) as a table named `only` with
/// the alias `t`. `only` is reserved in PostgreSQL, so an unquoted relation of that name with an
/// implicit alias is always this construct: the real relation is the "alias". Returns the folded
/// relation name and whether the alias was consumed.
pub(crate) fn relation_parts(
    name: &ObjectName,
    implicit_alias: Option<&Ident>,
) -> Option<(Vec<String>, bool)> {
    if let ([p], Some(alias)) = (name.0.as_slice(), implicit_alias) {
        if let Some(id) = p.as_ident() {
            if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("only") {
                return Some((vec![fold(alias)], true));
            }
        }
    }
    fold_name(name).map(|p| (p, false))
}

pub(crate) fn is_system_schema(schema: &str) -> bool {
    SYSTEM_SCHEMAS.contains(&schema)
}

/// True for relations whose contents are sensitive although they live in a system schema
/// (or, for `pg_stat_statements`, in whatever schema the extension was installed into), and for
/// anything in `pg_toast`, which holds raw out-of-line column values.
pub(crate) fn is_sensitive_relation(t: &TableRef) -> bool {
    t.schema == "pg_toast"
        || t.name.starts_with("pg_stat_statements")
        || (is_system_schema(&t.schema) && SENSITIVE_RELATIONS.contains(&t.name.as_str()))
}

/// System relations whose rows are roles, memberships, privileges or settings: writing them is
/// a role or privilege change (or `set_config` by another name, for `pg_settings`).
const ROLE_RELATIONS: &[&str] = &[
    "pg_authid",
    "pg_auth_members",
    "pg_db_role_setting",
    "pg_default_acl",
    "pg_init_privs",
    "pg_roles",
    "pg_user",
    "pg_shadow",
    "pg_group",
    "pg_settings",
    "pg_user_mapping",
    "pg_user_mappings",
];

/// What writing `t` amounts to when it is a system relation: the server's own record of the
/// schema, roles and settings. A superuser (or, for `pg_settings`, anyone) can INSERT, UPDATE
/// or DELETE those rows directly: renaming a PII column through `pg_attribute` or changing a
/// role through `pg_authid` is DDL or a role change, never an ordinary write.
pub(crate) fn system_write_kind(t: &TableRef) -> Option<super::Kind> {
    if !is_system_schema(&t.schema) && !t.schema.starts_with("pg_toast") {
        return None;
    }
    Some(if ROLE_RELATIONS.contains(&t.name.as_str()) {
        super::Kind::Role
    } else {
        super::Kind::Ddl
    })
}

/// Where a session's search path ends and the names of the temporary relations it may have
/// created begin, in the path the classifier is handed: a schema name cannot contain NUL.
pub(crate) const TEMP_MARK: &str = "\0temp";

/// Splits a path handed to the classifier into the search path and the session's temporary
/// relation names (see [`TEMP_MARK`]).
pub(crate) fn split_temp(path: &[String]) -> (&[String], &[String]) {
    match path.iter().position(|s| s == TEMP_MARK) {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (path, &[]),
    }
}

/// The session's own temporary schema: `pg_temp`, or its real name `pg_temp_N`.
pub(crate) fn is_temp_schema(schema: &str) -> bool {
    schema == "pg_temp" || schema.starts_with("pg_temp_")
}

/// The schemas to search for an unqualified name, in order.
pub(crate) fn effective_path(path: &[String]) -> impl Iterator<Item = &str> {
    let implicit = (!path.iter().any(|s| s == "pg_catalog")).then_some("pg_catalog");
    implicit.into_iter().chain(path.iter().map(String::as_str))
}

impl Catalog {
    /// True when the snapshot holds pg_catalog's own relations (a snapshot read from a server
    /// does; one built by hand for tests usually does not).
    pub(crate) fn has_system_relations(&self) -> bool {
        self.relations.contains_key(&TableRef {
            schema: "pg_catalog".into(),
            name: "pg_class".into(),
        })
    }

    /// Resolve a folded, possibly qualified relation name (`[name]`, `[schema, name]` or
    /// `[database, schema, name]`). A name the snapshot does not know resolves to the first
    /// schema of the path (where the server would create it).
    pub(crate) fn resolve_relation(&self, parts: &[String], path: &[String]) -> TableRef {
        let (schema, name) = match parts {
            [name] => (None, name.clone()),
            [.., schema, name] => (Some(schema.clone()), name.clone()),
            [] => (None, String::new()),
        };
        if let Some(schema) = schema {
            return TableRef { schema, name };
        }
        for s in effective_path(path) {
            let t = TableRef {
                schema: s.to_owned(),
                name: name.clone(),
            };
            if self.relations.contains_key(&t) {
                return t;
            }
        }
        // Not in the snapshot. Every pg_catalog relation is named pg_…; when the snapshot lacks
        // the system relations, assume such a name is one of them.
        let schema = if name.starts_with("pg_") && !self.has_system_relations() {
            "pg_catalog".to_owned()
        } else {
            path.iter()
                .find(|s| {
                    s.as_str() != "pg_catalog" && s.as_str() != "pg_temp" && !s.starts_with('$')
                })
                .cloned()
                .unwrap_or_else(|| "public".to_owned())
        };
        TableRef { schema, name }
    }
}

/// An encoding name as PostgreSQL compares it: lower case, letters and digits only
/// (`UTF-8` → `utf8`, `SQL_ASCII` → `sqlascii`).
pub fn encoding_key(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether an encoding name means UTF-8 to PostgreSQL (`UTF8`, `utf-8`, `Unicode`).
pub fn is_utf8_encoding(name: &str) -> bool {
    matches!(encoding_key(name).as_str(), "utf8" | "unicode")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_respects_quotes() {
        assert_eq!(fold(&Ident::new("Customers")), "customers");
        assert_eq!(fold(&Ident::with_quote('"', "Customers")), "Customers");
    }

    /// PostgreSQL keeps the first 63 bytes of a name, never half a character.
    #[test]
    fn long_names_are_cut_as_the_server_cuts_them() {
        let long = "a".repeat(70);
        assert_eq!(fold(&Ident::new(long.to_uppercase())), "a".repeat(63));
        assert_eq!(fold(&Ident::with_quote('"', &long)), "a".repeat(63));
        // 62 bytes then a two-byte character: the character would cross byte 63.
        let name = format!("{}é{}", "b".repeat(62), "tail");
        assert_eq!(fold(&Ident::with_quote('"', &name)), "b".repeat(62));
        assert_eq!(fold(&Ident::new("short")), "short");
    }

    #[test]
    fn resolution_walks_the_path() {
        let cat = Catalog::builder()
            .search_path(&["app", "public"])
            .table("public", "customers", &["id"])
            .table("app", "orders", &["id"])
            .table("pg_catalog", "pg_class", &["oid", "relname"])
            .build();
        let path = cat.search_path.clone();
        let r = |p: &[&str]| {
            let parts: Vec<String> = p.iter().map(|s| s.to_string()).collect();
            let t = cat.resolve_relation(&parts, &path);
            let known = cat.relations.contains_key(&t);
            (t.to_string(), known)
        };
        assert_eq!(r(&["customers"]), ("public.customers".into(), true));
        assert_eq!(r(&["orders"]), ("app.orders".into(), true));
        assert_eq!(r(&["pg_class"]), ("pg_catalog.pg_class".into(), true));
        assert_eq!(r(&["nope"]), ("app.nope".into(), false));
        assert_eq!(r(&["pg_nope"]), ("app.pg_nope".into(), false));
        assert_eq!(
            r(&["db", "public", "customers"]),
            ("public.customers".into(), true)
        );
    }

    #[test]
    fn sensitive_system_relations() {
        let t = |s: &str, n: &str| TableRef {
            schema: s.into(),
            name: n.into(),
        };
        assert!(is_sensitive_relation(&t("pg_catalog", "pg_stats")));
        assert!(is_sensitive_relation(&t("public", "pg_stat_statements")));
        assert!(is_sensitive_relation(&t("pg_toast", "pg_toast_1234")));
        assert!(!is_sensitive_relation(&t("pg_catalog", "pg_class")));
        assert!(!is_sensitive_relation(&t("public", "pg_stats")));
    }
}
