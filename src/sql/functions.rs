//! Which functions a statement may call without making it more than it looks.
//!
//! A function is harmless when it is a built-in (pg_catalog / information_schema) function that
//! is immutable or stable, not SECURITY DEFINER and not on the deny list, when it is one of a few
//! volatile built-ins whose only effect is a value or a delay (`random`, `clock_timestamp`,
//! `pg_sleep`…), or when the policy declares it safe. Everything else — user-defined functions,
//! functions the catalog does not know, anything that touches files, other backends, large
//! objects, replication, sequences or runs SQL hidden in a string — is unsafe.
//!
//! `pg_sleep` is deliberately harmless: it only holds the session's own connection, which an idle
//! open transaction can do anyway, and the server's `statement_timeout` bounds it.

use std::collections::HashSet;

use super::names::effective_path;
use super::{Catalog, Volatility};

/// Never safe, whatever the policy declares: server files and programs, large objects, other
/// backends, server state, replication, remote connections, and SQL executed from a string
/// (which would hide the tables it reads).
const HARD_DENY: &[&str] = &[
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_logdir_ls",
    "loread",
    "lowrite",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_signal_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_logical_emit_message",
    "pg_import_system_collations",
    "pg_log_backend_memory_contexts",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "ts_stat",
    "set_config",
];

/// Prefixes of never-safe function families.
const HARD_DENY_PREFIXES: &[&str] = &[
    "pg_ls_",
    "lo_",
    "dblink",
    "pg_create_",
    "pg_drop_replication_slot",
    "pg_copy_",
    "pg_logical_slot_",
    "pg_replication_",
    "pg_stat_reset",
    "pg_stat_statements_reset",
    "query_to_xml",
    "cursor_to_xml",
    "table_to_xml",
    "schema_to_xml",
    "database_to_xml",
];

/// Built-ins that are stable but reveal other sessions' SQL or the server's auth files: unsafe
/// unless the policy declares them.
const SENSITIVE: &[&str] = &[
    "pg_stat_get_activity",
    "pg_stat_get_backend_activity",
    "pg_stat_statements",
    "pg_stat_statements_info",
    "pg_hba_file_rules",
    "pg_ident_file_mappings",
    "pg_show_all_file_settings",
];

/// Volatile built-ins whose only effect is the value they return (or a delay).
const HARMLESS_VOLATILE: &[&str] = &[
    "random",
    "random_normal",
    "gen_random_uuid",
    "clock_timestamp",
    "timeofday",
    "statement_timestamp",
    "transaction_timestamp",
    "now",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "currval",
    "lastval",
    "txid_current",
    "txid_current_if_assigned",
    "pg_current_xact_id",
    "pg_current_xact_id_if_assigned",
    // releasing the session's own advisory locks (connection pools do it on release)
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
];

/// Common immutable/stable pg_catalog functions, for snapshots that do not list pg_proc (tests,
/// or a catalog read without access to it). A snapshot read from the server supersedes this.
#[rustfmt::skip]
const BUILTIN_SAFE: &[&str] = &[
    // aggregates and window functions
    "count", "sum", "avg", "min", "max", "array_agg", "string_agg", "json_agg", "jsonb_agg",
    "json_object_agg", "jsonb_object_agg", "bool_and", "bool_or", "every", "bit_and", "bit_or",
    "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "corr", "covar_pop",
    "covar_samp", "percentile_cont", "percentile_disc", "mode", "regr_slope", "regr_intercept",
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value",
    // strings
    "lower", "upper", "length", "char_length", "character_length", "octet_length", "bit_length",
    "substr", "substring", "trim", "btrim", "ltrim", "rtrim", "lpad", "rpad", "replace", "concat",
    "concat_ws", "format", "left", "right", "position", "strpos", "split_part", "initcap", "md5",
    "sha224", "sha256", "sha384", "sha512", "encode", "decode", "regexp_replace", "regexp_match",
    "regexp_matches", "regexp_split_to_array", "regexp_split_to_table", "regexp_like",
    "regexp_count", "regexp_instr", "regexp_substr", "reverse", "repeat", "translate", "to_char",
    "to_number", "to_date", "to_timestamp", "quote_ident", "quote_literal", "quote_nullable",
    "starts_with", "ascii", "chr", "string_to_array", "string_to_table", "array_to_string",
    "to_hex", "overlay", "normalize", "unistr",
    // numbers
    "abs", "ceil", "ceiling", "floor", "round", "trunc", "sqrt", "cbrt", "power", "pow", "exp",
    "ln", "log", "log10", "mod", "sign", "greatest", "least", "pi", "degrees", "radians", "sin",
    "cos", "tan", "asin", "acos", "atan", "atan2", "width_bucket", "div", "gcd", "lcm",
    "factorial", "scale", "min_scale", "trim_scale",
    // date and time
    "current_date", "current_time", "current_timestamp", "localtime", "localtimestamp",
    "date_trunc", "date_part", "extract", "age", "make_date", "make_time", "make_timestamp",
    "make_timestamptz", "make_interval", "justify_days", "justify_hours", "justify_interval",
    "isfinite", "date_bin", "timezone",
    // json
    "row_to_json", "to_json", "to_jsonb", "json_build_object", "jsonb_build_object",
    "json_build_array", "jsonb_build_array", "json_object", "jsonb_object", "array_to_json",
    "json_array_elements", "json_array_elements_text", "jsonb_array_elements",
    "jsonb_array_elements_text", "json_each", "json_each_text", "jsonb_each", "jsonb_each_text",
    "json_object_keys", "jsonb_object_keys", "jsonb_set", "jsonb_insert", "jsonb_pretty",
    "json_typeof", "jsonb_typeof", "jsonb_strip_nulls", "json_strip_nulls", "json_extract_path",
    "json_extract_path_text", "jsonb_extract_path", "jsonb_extract_path_text", "jsonb_path_query",
    "jsonb_path_query_array", "jsonb_path_query_first", "jsonb_path_exists", "jsonb_path_match",
    "json_populate_record", "jsonb_populate_record", "json_populate_recordset",
    "jsonb_populate_recordset", "json_to_record", "jsonb_to_record", "json_to_recordset",
    "jsonb_to_recordset", "json_array_length", "jsonb_array_length",
    // arrays and sets
    "array_length", "array_upper", "array_lower", "cardinality", "unnest", "array_append",
    "array_prepend", "array_cat", "array_position", "array_positions", "array_remove",
    "array_replace", "array_dims", "array_ndims", "generate_series", "generate_subscripts",
    "coalesce", "nullif", "num_nulls", "num_nonnulls", "array",
    // text search
    "to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery",
    "ts_rank", "ts_rank_cd", "ts_headline", "setweight", "strip",
    // casts spelled as functions
    "text", "int2", "int4", "int8", "float4", "float8", "numeric", "bool", "date", "timestamp",
    "timestamptz", "interval", "varchar", "bpchar", "uuid", "inet", "cidr",
    // session and server information (what drivers ask on connect)
    "version", "current_schema", "current_schemas", "current_database", "current_catalog",
    "current_user", "session_user", "current_role", "user", "current_setting", "pg_backend_pid",
    "inet_server_addr", "inet_server_port", "inet_client_addr", "inet_client_port",
    "pg_is_in_recovery", "pg_postmaster_start_time", "pg_conf_load_time", "pg_has_role",
    "pg_table_is_visible", "pg_type_is_visible", "pg_function_is_visible", "format_type",
    "obj_description", "col_description", "shobj_description", "pg_encoding_to_char",
    "pg_char_to_encoding", "pg_client_encoding", "pg_size_pretty", "pg_relation_size",
    "pg_total_relation_size", "pg_table_size", "pg_indexes_size", "pg_database_size",
    "pg_column_size", "pg_typeof", "pg_jit_available", "pg_get_keywords", "pg_tablespace_location",
    "pg_my_temp_schema", "pg_is_other_temp_schema", "pg_get_userbyid", "pg_get_expr",
    "pg_get_viewdef", "pg_get_constraintdef", "pg_get_indexdef", "pg_get_triggerdef",
    "pg_get_functiondef", "pg_get_function_arguments", "pg_get_function_result",
    "pg_get_function_identity_arguments", "pg_get_serial_sequence", "pg_get_partkeydef",
    "pg_get_statisticsobjdef", "pg_get_ruledef", "pg_get_partition_constraintdef", "to_regclass",
    "to_regtype", "to_regproc", "to_regprocedure", "to_regnamespace", "to_regrole", "to_regoper",
    "array_in", "pg_index_column_has_property", "pg_indexam_has_property", "pg_index_has_property",
    "pg_options_to_table", "pg_get_replica_identity_index", "pg_column_is_updatable",
    "pg_relation_is_updatable",
];

/// Functions whose presence makes a relation-free query a catalog query (`SELECT version()`).
#[rustfmt::skip]
const INFO_FUNCTIONS: &[&str] = &[
    "version", "current_schema", "current_schemas", "current_database", "current_catalog",
    "current_user", "session_user", "current_role", "user", "current_setting", "pg_backend_pid",
    "inet_server_addr", "inet_server_port", "inet_client_addr", "inet_client_port",
    "pg_is_in_recovery", "pg_postmaster_start_time", "pg_conf_load_time", "pg_encoding_to_char",
    "pg_client_encoding", "pg_jit_available", "pg_get_keywords", "pg_my_temp_schema",
    "to_regclass", "to_regtype", "to_regproc", "to_regnamespace", "to_regrole", "pg_has_role",
    "format_type",
];

/// The policy's knobs, prepared for lookups.
#[derive(Debug, Clone, Default)]
pub(crate) struct FunctionPolicy {
    /// Lower-cased `schema.name` or bare `name`.
    pub safe: HashSet<String>,
}

/// What the classifier concluded about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FunctionVerdict {
    /// `schema.name` when resolved, the name as written otherwise.
    pub qualified: String,
    pub safe: bool,
    /// The name is a function the snapshot lists or a known built-in.
    pub known: bool,
}

fn is_builtin_safe(name: &str) -> bool {
    BUILTIN_SAFE.contains(&name)
        || HARMLESS_VOLATILE.contains(&name)
        || (name.starts_with("has_") && name.ends_with("_privilege"))
}

pub(crate) fn is_hard_denied(name: &str) -> bool {
    HARD_DENY.contains(&name) || HARD_DENY_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// True for functions a bare-relation-free query may call and still count as a catalog query.
pub(crate) fn is_info_function(qualified: &str) -> bool {
    let (schema, name) = qualified
        .rsplit_once('.')
        .unwrap_or(("pg_catalog", qualified));
    schema == "pg_catalog" && (INFO_FUNCTIONS.contains(&name) || name.starts_with("has_"))
}

fn builtin_ok(schema: &str, name: &str, volatility: Volatility, security_definer: bool) -> bool {
    matches!(schema, "pg_catalog" | "information_schema")
        && !security_definer
        && !SENSITIVE.contains(&name)
        && (volatility != Volatility::Volatile || HARMLESS_VOLATILE.contains(&name))
}

impl FunctionPolicy {
    fn declared(&self, schema: Option<&str>, name: &str) -> bool {
        self.safe.contains(name)
            || schema.is_some_and(|s| self.safe.contains(&format!("{s}.{name}")))
    }

    /// Decide about a call to the folded name `parts` (`[name]` or `[schema, name]`).
    pub(crate) fn verdict(
        &self,
        catalog: &Catalog,
        path: &[String],
        parts: &[String],
    ) -> FunctionVerdict {
        let (schema, name) = match parts {
            [name] => (None, name.as_str()),
            [.., schema, name] => (Some(schema.as_str()), name.as_str()),
            [] => (None, ""),
        };
        // Every overload the call might resolve to, along the path.
        let candidates: Vec<&super::FunctionInfo> = match schema {
            Some(s) => catalog
                .functions
                .get(&format!("{s}.{name}"))
                .into_iter()
                .collect(),
            None => effective_path(path)
                .filter_map(|s| catalog.functions.get(&format!("{s}.{name}")))
                .collect(),
        };
        let qualified = match (candidates.first(), schema) {
            (Some(f), _) => format!("{}.{}", f.schema, f.name),
            (None, Some(s)) => format!("{s}.{name}"),
            (None, None) if is_builtin_safe(name) => {
                format!("pg_catalog.{name}")
            }
            (None, None) => name.to_owned(),
        };
        let known = !candidates.is_empty() || (schema.is_none() && is_builtin_safe(name));
        if is_hard_denied(name) {
            return FunctionVerdict {
                qualified,
                safe: false,
                known,
            };
        }
        let safe = if candidates.is_empty() {
            let builtin_schema = matches!(schema, None | Some("pg_catalog"));
            self.declared(schema.or(Some("pg_catalog")), name)
                || (builtin_schema && is_builtin_safe(name))
        } else {
            candidates.iter().all(|f| {
                self.declared(Some(&f.schema), name)
                    || builtin_ok(&f.schema, name, f.volatility, f.security_definer)
            })
        };
        FunctionVerdict {
            qualified,
            safe,
            known,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(p: &FunctionPolicy, cat: &Catalog, name: &[&str]) -> (String, bool) {
        let parts: Vec<String> = name.iter().map(|s| s.to_string()).collect();
        let v = p.verdict(cat, &cat.search_path, &parts);
        (v.qualified, v.safe)
    }

    #[test]
    fn builtins_user_functions_and_declarations() {
        let cat = Catalog::builder()
            .function("public", "calc", Volatility::Immutable, false, "sql")
            .function("public", "lower", Volatility::Volatile, false, "plpgsql")
            .function(
                "pg_catalog",
                "nextval",
                Volatility::Volatile,
                false,
                "internal",
            )
            .function(
                "pg_catalog",
                "upper",
                Volatility::Immutable,
                false,
                "internal",
            )
            .function("public", "audit_me", Volatility::Stable, true, "plpgsql")
            .build();
        let none = FunctionPolicy::default();
        assert_eq!(
            v(&none, &cat, &["count"]),
            ("pg_catalog.count".into(), true)
        );
        assert_eq!(
            v(&none, &cat, &["upper"]),
            ("pg_catalog.upper".into(), true)
        );
        assert_eq!(
            v(&none, &cat, &["nextval"]),
            ("pg_catalog.nextval".into(), false)
        );
        assert_eq!(v(&none, &cat, &["calc"]), ("public.calc".into(), false));
        assert_eq!(v(&none, &cat, &["mystery"]), ("mystery".into(), false));
        assert_eq!(
            v(&none, &cat, &["pg_read_file"]),
            ("pg_read_file".into(), false)
        );
        assert!(!v(&none, &cat, &["dblink_exec"]).1);
        assert!(v(&none, &cat, &["random"]).1);
        assert!(v(&none, &cat, &["pg_sleep"]).1);
        // A user-defined overload of a built-in name may capture the call: unsafe.
        assert!(!v(&none, &cat, &["lower"]).1);
        let declared = FunctionPolicy {
            safe: ["calc", "public.audit_me", "pg_read_file", "nextval"]
                .map(String::from)
                .into(),
        };
        assert!(v(&declared, &cat, &["calc"]).1);
        assert!(v(&declared, &cat, &["public", "audit_me"]).1);
        assert!(v(&declared, &cat, &["nextval"]).1);
        assert!(
            !v(&declared, &cat, &["pg_read_file"]).1,
            "the hard deny list wins"
        );
    }

    #[test]
    fn info_functions() {
        assert!(is_info_function("pg_catalog.version"));
        assert!(is_info_function("pg_catalog.has_table_privilege"));
        assert!(!is_info_function("pg_catalog.count"));
        assert!(!is_info_function("public.version"));
    }
}
