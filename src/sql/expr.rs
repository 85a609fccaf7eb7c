//! Expressions: which columns they reference, what their values are computed from, which
//! functions they call. Built on sqlparser's visitor so that every nested expression is seen;
//! nested queries (scalar subqueries, EXISTS, IN, ARRAY(…), function arguments) are analyzed in
//! their own scope and then skipped by the visitor.

use std::ops::ControlFlow;

use sqlparser::ast::{
    DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Query, Value, Visit,
    Visitor, WindowType,
};

use super::coverage::is_marked_kind;
use super::functions::is_info_function;
use super::implied::conversions;
use super::names::{fold, fold_name, is_utf8_encoding};
use super::query::analyze_query;
use super::scope::{union_into, unique, Acc, Ctx, Env, Lineage, NotationCall, OutCol, Resolution};

/// SQL value keywords sqlparser may hand over as bare identifiers: never columns.
const VALUE_KEYWORDS: &[&str] = &[
    "current_user",
    "session_user",
    "user",
    "current_role",
    "current_catalog",
    "current_schema",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "default",
];

/// Walk anything visitable (usually an `Expr`) in `env` and return the lineage of its value.
pub(crate) fn walk<V: Visit>(cx: &Ctx<'_>, env: &Env<'_>, acc: &mut Acc, node: &V) -> Lineage {
    walk_with(cx, env, acc, node, None)
}

/// As [`walk`], with the output columns of the query whose ORDER BY this is, so that output
/// aliases resolve.
pub(crate) fn walk_with<V: Visit>(
    cx: &Ctx<'_>,
    env: &Env<'_>,
    acc: &mut Acc,
    node: &V,
    outputs: Option<&[OutCol]>,
) -> Lineage {
    let mut w = Walker {
        cx,
        env,
        acc,
        outputs,
        lineage: Vec::new(),
        skip_query: None,
        skip_expr: None,
        mute: Vec::new(),
        mute_roots: Vec::new(),
    };
    let _ = node.visit(&mut w);
    w.lineage
}

struct Walker<'w, 'a, 'e> {
    cx: &'w Ctx<'a>,
    env: &'w Env<'e>,
    acc: &'w mut Acc,
    outputs: Option<&'w [OutCol]>,
    lineage: Lineage,
    /// The nested query / expression being skipped (already analyzed), by address.
    skip_query: Option<usize>,
    skip_expr: Option<usize>,
    /// Expressions whose arguments do not flow into the value (`count(x)`), by address.
    mute: Vec<usize>,
    /// Expressions to mute when reached (window PARTITION/ORDER BY, aggregate FILTER).
    mute_roots: Vec<usize>,
}

fn addr<T>(x: &T) -> usize {
    x as *const T as usize
}

impl Walker<'_, '_, '_> {
    fn skipping(&self) -> bool {
        self.skip_query.is_some() || self.skip_expr.is_some()
    }

    fn take(&mut self, mut r: Resolution) {
        union_into(&mut r.lineage, &std::mem::take(&mut r.maybe));
        for call in std::mem::take(&mut r.calls) {
            self.notation_call(call, &mut r);
        }
        self.acc.columns(&r.lineage);
        self.acc.live_check(&r.live);
        self.acc.touched.extend(r.sources);
        if self.mute.is_empty() {
            union_into(&mut self.lineage, &r.lineage);
        }
    }

    /// `rel.name` naming no column of `rel`: to PostgreSQL, the call `name(rel)` when a
    /// function of that name exists. Judged as that call, with the whole row as its argument.
    /// A name that is neither a listed column nor a known function is still treated so for a
    /// relation (the function may be newer than the snapshot); the live comparison this asks
    /// for turns a column added since into a plain column reference.
    fn notation_call(&mut self, call: NotationCall, r: &mut Resolution) {
        let parts = [call.name];
        let v = self
            .cx
            .functions
            .verdict(self.cx.catalog, self.cx.path, &parts);
        if !(call.relation || v.known) {
            return;
        }
        let info = is_info_function(&v.qualified);
        self.acc.function(v.qualified, v.safe, info);
        union_into(&mut r.lineage, &call.whole);
        r.live.extend(call.live);
    }

    fn flow(&mut self, lin: &[super::ColumnRef]) {
        if self.mute.is_empty() {
            union_into(&mut self.lineage, lin);
        }
    }

    fn ident(&mut self, name: String) {
        let mut r = self.env.resolve_ident(&name);
        if !r.sources.is_empty() {
            return self.take(r);
        }
        // Unnamed columns of derived sources it may denote flow whatever it turns out to be.
        let maybe = std::mem::take(&mut r.maybe);
        if !maybe.is_empty() {
            self.acc.columns(&maybe);
            self.flow(&maybe);
        }
        // An output alias (ORDER BY total).
        if let Some(out) = self.outputs {
            let mut lin = Vec::new();
            let mut found = false;
            for c in out
                .iter()
                .filter(|c| c.name.as_deref() == Some(name.as_str()))
            {
                found = true;
                union_into(&mut lin, &c.lineage);
            }
            if found {
                self.acc.columns(&lin);
                return self.flow(&lin);
            }
        }
        if VALUE_KEYWORDS.contains(&name.as_str()) {
            return;
        }
        // Unresolvable: a column the snapshot does not know yet (added after it was read).
        // Attribute it to the relations of the innermost scope rather than lose it.
        let mut r = Resolution::default();
        for s in self.env.sources.iter().filter(|s| s.relation.is_some()) {
            if let Some(rel) = &s.relation {
                union_into(
                    &mut r.lineage,
                    &[super::ColumnRef {
                        table: rel.clone(),
                        column: name.clone(),
                    }],
                );
                r.sources.push(s.uid);
            }
        }
        // A subquery or CTE whose columns came from a `*` may hold it too, under a name the
        // snapshot never listed: its tables are compared with the live catalog.
        for s in self.env.sources.iter().filter(|s| s.relation.is_none()) {
            r.live.extend(s.live_tables());
        }
        // Or the server names a derived column so where the gateway did not: any of them.
        let (lin, uids) = self.env.derived_columns();
        union_into(&mut r.lineage, &lin);
        r.sources.extend(uids);
        self.take(r);
    }

    fn function(&mut self, f: &Function, e: &Expr) {
        let Some(parts) = fold_name(&f.name) else {
            self.acc.unsupported("function name");
            return;
        };
        let name = parts.last().map(String::as_str).unwrap_or("");
        let builtin_schema = parts.len() == 1 || parts[parts.len() - 2] == "pg_catalog";
        if name == "set_config" && builtin_schema {
            self.set_config(f);
        } else {
            let v = self
                .cx
                .functions
                .verdict(self.cx.catalog, self.cx.path, &parts);
            let info = is_info_function(&v.qualified);
            self.acc.function(v.qualified, v.safe, info);
        }
        // The window and the FILTER choose rows; they do not flow into the value.
        if let Some(WindowType::WindowSpec(spec)) = &f.over {
            self.mute_roots.extend(spec.partition_by.iter().map(addr));
            self.mute_roots
                .extend(spec.order_by.iter().map(|o| addr(&o.expr)));
        }
        if let Some(filter) = &f.filter {
            self.mute_roots.push(addr(&**filter));
        }
        // `count(x)` yields a number, not x.
        if name == "count" && builtin_schema {
            self.mute.push(addr(e));
        }
        // `t.*` as an argument (`to_jsonb(c.*)`) is a whole-row reference the visitor cannot
        // see as an expression.
        if let FunctionArguments::List(list) = &f.args {
            for arg in &list.args {
                let fa = match arg {
                    FunctionArg::Named { arg, .. }
                    | FunctionArg::ExprNamed { arg, .. }
                    | FunctionArg::Unnamed(arg) => arg,
                };
                if let FunctionArgExpr::QualifiedWildcard(q) = fa {
                    match fold_name(q) {
                        Some(q) => {
                            let r = self.env.whole_row(&q);
                            self.take(r);
                        }
                        None => self.acc.unsupported("qualified wildcard"),
                    }
                }
            }
        }
    }

    /// `set_config(name, value, is_local)`: a role change when the name is `role` or
    /// `session_authorization`, a session setting when it is allowlisted, unsafe otherwise.
    ///
    /// The value is kept where a plain read gets it back (`current_setting`, `SHOW`, and the
    /// ParameterStatus of a reported setting such as `application_name`), so the columns it
    /// is computed from are stored, as by a write: `WHERE set_config('application_name',
    /// ssn, false) IS NOT NULL` copies an SSN as surely as an UPDATE would.
    fn set_config(&mut self, f: &Function) {
        self.cx.literal_sensitive.set(true);
        let arg = |i: usize| match &f.args {
            FunctionArguments::List(l) => l.args.get(i),
            _ => None,
        };
        let literal = |a: Option<&FunctionArg>| match a {
            Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))) => match &v.value {
                Value::SingleQuotedString(s)
                | Value::EscapedStringLiteral(s)
                | Value::UnicodeStringLiteral(s)
                | Value::NationalStringLiteral(s) => Some(s.clone()),
                Value::DollarQuotedString(d) => Some(d.value.clone()),
                _ => None,
            },
            _ => None,
        };
        if let Some(
            FunctionArg::Unnamed(FunctionArgExpr::Expr(value))
            | FunctionArg::Named {
                arg: FunctionArgExpr::Expr(value),
                ..
            }
            | FunctionArg::ExprNamed {
                arg: FunctionArgExpr::Expr(value),
                ..
            },
        ) = arg(1)
        {
            let lineage = walk(self.cx, self.env, self.acc, value);
            self.acc.stored(None, &lineage);
        }
        let setting = literal(arg(0)).map(|s| s.to_ascii_lowercase());
        if setting.as_deref() == Some("client_encoding")
            && !literal(arg(1)).is_some_and(|v| is_utf8_encoding(&v))
        {
            self.acc.flags.foreign_encoding = true;
        }
        let safe = match setting.as_deref() {
            Some("role") | Some("session_authorization") => {
                self.acc.role_setting = true;
                false
            }
            Some(s) if self.cx.allowed_settings.contains(s) => {
                self.acc.session_setting = true;
                true
            }
            _ => false,
        };
        self.acc
            .function("pg_catalog.set_config".to_owned(), safe, false);
    }

    /// A value converted to a type (`x::t`, `CAST(x AS t)`, `t 'x'`): whatever the conversion
    /// runs is called (see `implied`).
    fn conversion(&mut self, ty: &DataType) {
        self.acc.implied(conversions(self.cx, ty));
    }

    fn subquery(&mut self, q: &Query) -> Vec<OutCol> {
        analyze_query(self.cx, Some(self.env), q, self.acc)
    }
}

impl Visitor for Walker<'_, '_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.skipping() {
            return ControlFlow::Continue(());
        }
        let out = self.subquery(q);
        for c in &out {
            self.flow(&c.lineage);
        }
        self.skip_query = Some(addr(q));
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.skip_query == Some(addr(q)) {
            self.skip_query = None;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if self.skipping() {
            return ControlFlow::Continue(());
        }
        if !self.acc.spend(1) {
            return ControlFlow::Break(());
        }
        if is_marked_kind(e) {
            self.cx.marks.mark(e);
        }
        if self.mute_roots.contains(&addr(e)) {
            self.mute.push(addr(e));
        }
        match e {
            Expr::Identifier(id) => self.ident(fold(id)),
            Expr::CompoundIdentifier(ids) => {
                let parts: Vec<String> = ids.iter().map(fold).collect();
                if let Some((col, qual)) = parts.split_last() {
                    let r = self.env.resolve_qualified(qual, col);
                    self.take(r);
                }
            }
            Expr::Function(f) => self.function(f, e),
            Expr::Cast { data_type, .. } => self.conversion(data_type),
            Expr::TypedString(ts) => self.conversion(&ts.data_type),
            Expr::Wildcard(_) => {
                let (cols, uids) = self.env.star();
                let lin = unique(cols.iter().flat_map(|c| &c.lineage));
                self.acc.columns(&lin);
                self.flow(&lin);
                self.acc.touched.extend(uids);
            }
            Expr::QualifiedWildcard(q, _) => match fold_name(q) {
                Some(q) => {
                    let r = self.env.whole_row(&q);
                    self.take(r);
                }
                None => self.acc.unsupported("qualified wildcard"),
            },
            // EXISTS and IN (subquery) yield booleans: the subquery's columns are referenced but
            // do not flow into the value.
            Expr::Exists { subquery, .. } => {
                self.subquery(subquery);
                self.skip_expr = Some(addr(e));
            }
            Expr::InSubquery { expr, subquery, .. } => {
                let lin = walk(self.cx, self.env, self.acc, expr.as_ref());
                self.flow(&lin);
                self.subquery(subquery);
                self.skip_expr = Some(addr(e));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        // An expression can be both skipped and muted (`OVER (PARTITION BY EXISTS (…))`):
        // ending the skip must not leave it muted, or every column after it in the same
        // value would lose its lineage.
        if self.skip_expr == Some(addr(e)) {
            self.skip_expr = None;
        }
        if !self.skipping() && self.mute.last() == Some(&addr(e)) {
            self.mute.pop();
        }
        ControlFlow::Continue(())
    }
}
