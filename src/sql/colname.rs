//! The names PostgreSQL gives select-list items that have no alias (`FigureColname` in its
//! parser). A subquery's or CTE's columns are referenced by these names from outside, so the
//! lineage of `SELECT "?column?" FROM (SELECT ssn || '' FROM customers) s` or of
//! `SELECT "case" FROM (SELECT CASE WHEN true THEN ssn END FROM customers) s` depends on
//! naming them exactly as the server does.
//!
//! Where the server's name cannot be worked out with certainty the answer is `None`: a
//! reference that matches no named column of the source then counts as a reference to every
//! unnamed one (see [`super::scope::Source`]), so an unknown name errs towards more lineage,
//! never less.

use sqlparser::ast::{
    AccessExpr, ArrayElemTypeDef, BinaryOperator, CastKind, DataType, ExactNumberInfo, Expr, Query,
    SelectItem, SetExpr, TimezoneInfo, TrimWhereField,
};

use super::names::fold;

/// What the server would call a column: a name and how strongly it holds (2 for a column,
/// field or function name; 1 for a type name or `case`, which an enclosing cast or CASE
/// overrides), no name of its own (`?column?`), or not known here.
#[derive(Debug, PartialEq, Eq)]
enum Fig {
    Name(String, u8),
    Nothing,
    Unsure,
}

/// The column name the server gives an unaliased select-list expression, or `None` when the
/// gateway cannot be sure of it.
pub(crate) fn column_name(e: &Expr) -> Option<String> {
    match figure(e) {
        Fig::Name(n, _) => Some(n),
        Fig::Nothing => Some("?column?".to_owned()),
        Fig::Unsure => None,
    }
}

fn named(name: &str) -> Fig {
    Fig::Name(name.to_owned(), 2)
}

fn figure(e: &Expr) -> Fig {
    match e {
        Expr::Identifier(i) => Fig::Name(fold(i), 2),
        Expr::CompoundIdentifier(ids) => ids.last().map_or(Fig::Unsure, |i| Fig::Name(fold(i), 2)),
        Expr::CompoundFieldAccess { root, access_chain } => field_access(root, access_chain),
        Expr::Function(f) => match f.name.0.last().and_then(|p| p.as_ident()) {
            Some(i) => Fig::Name(fold(i), 2),
            None => Fig::Unsure,
        },
        Expr::Nested(inner) | Expr::Collate { expr: inner, .. } => figure(inner),
        Expr::Cast {
            kind: CastKind::Cast | CastKind::DoubleColon,
            expr,
            data_type,
            format: None,
        } => match figure(expr) {
            Fig::Unsure => Fig::Unsure,
            Fig::Name(n, 2) => Fig::Name(n, 2),
            _ => type_fig(data_type),
        },
        Expr::TypedString(t) => type_fig(&t.data_type),
        Expr::Interval(_) => Fig::Name("interval".to_owned(), 1),
        // An ELSE with a strong name names the CASE; otherwise it is `case`.
        Expr::Case { else_result, .. } => match else_result.as_deref().map(figure) {
            Some(Fig::Unsure) => Fig::Unsure,
            Some(Fig::Name(n, 2)) => Fig::Name(n, 2),
            _ => Fig::Name("case".to_owned(), 1),
        },
        Expr::Exists { negated: false, .. } => named("exists"),
        Expr::Subquery(q) => first_target(q),
        Expr::Array(_) => named("array"),
        Expr::Tuple(_) => named("row"),
        // The grammar turns these into function calls.
        Expr::AtTimeZone { .. } => named("timezone"),
        Expr::Extract { .. } => named("extract"),
        Expr::Substring { .. } => named("substring"),
        Expr::Position { .. } => named("position"),
        Expr::Overlay { .. } => named("overlay"),
        Expr::Ceil { .. } => named("ceil"),
        Expr::Floor { .. } => named("floor"),
        Expr::Trim { trim_where, .. } => named(match trim_where {
            Some(TrimWhereField::Leading) => "ltrim",
            Some(TrimWhereField::Trailing) => "rtrim",
            _ => "btrim",
        }),
        Expr::BinaryOp {
            op: BinaryOperator::Overlaps,
            ..
        } => named("overlaps"),
        // Operators, tests and constants have no name.
        Expr::Value(_)
        | Expr::BinaryOp { .. }
        | Expr::UnaryOp { .. }
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsNotTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotFalse(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotUnknown(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::InList { .. }
        | Expr::InSubquery { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::AnyOp { .. }
        | Expr::AllOp { .. }
        | Expr::Exists { negated: true, .. } => Fig::Nothing,
        _ => Fig::Unsure,
    }
}

/// `(c).ssn`, `arr[1]`, `(x).f[2]`: the last field name; subscripts alone keep the root's.
fn field_access(root: &Expr, chain: &[AccessExpr]) -> Fig {
    let mut last = None;
    for a in chain {
        match a {
            AccessExpr::Dot(Expr::Identifier(i)) => last = Some(fold(i)),
            AccessExpr::Dot(_) => return Fig::Unsure,
            AccessExpr::Subscript(_) => {}
        }
    }
    match last {
        Some(n) => Fig::Name(n, 2),
        None => figure(root),
    }
}

/// A scalar subquery is named after its first output column.
fn first_target(q: &Query) -> Fig {
    fn of(body: &SetExpr) -> Fig {
        match body {
            SetExpr::Select(s) => match s.projection.first() {
                Some(SelectItem::ExprWithAlias { alias, .. }) => Fig::Name(fold(alias), 2),
                Some(SelectItem::UnnamedExpr(e)) => match figure(e) {
                    Fig::Name(n, _) => Fig::Name(n, 2),
                    Fig::Nothing => named("?column?"),
                    Fig::Unsure => Fig::Unsure,
                },
                _ => Fig::Unsure,
            },
            SetExpr::Query(q) => of(&q.body),
            SetExpr::SetOperation { left, .. } => of(left),
            SetExpr::Values(_) => named("column1"),
            _ => Fig::Unsure,
        }
    }
    of(&q.body)
}

/// A cast names its column after the type (the last part of its name, as the server spells
/// the SQL-standard ones) when its operand has no strong name.
fn type_fig(t: &DataType) -> Fig {
    match type_name(t) {
        Some(n) => Fig::Name(n, 1),
        None => Fig::Unsure,
    }
}

fn type_name(t: &DataType) -> Option<String> {
    let s = match t {
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => "int4",
        DataType::SmallInt(_) | DataType::Int2(_) => "int2",
        DataType::BigInt(_) | DataType::Int8(_) => "int8",
        DataType::Real | DataType::Float4 => "float4",
        DataType::DoublePrecision | DataType::Float8 => "float8",
        DataType::Float(ExactNumberInfo::None) => "float8",
        DataType::Float(ExactNumberInfo::Precision(p)) if (1..=24).contains(p) => "float4",
        DataType::Float(ExactNumberInfo::Precision(p)) if (25..=53).contains(p) => "float8",
        DataType::Numeric(_) | DataType::Decimal(_) | DataType::Dec(_) => "numeric",
        DataType::Bool | DataType::Boolean => "bool",
        DataType::Char(_) | DataType::Character(_) => "bpchar",
        DataType::Varchar(_) | DataType::CharacterVarying(_) => "varchar",
        DataType::Text => "text",
        DataType::Bytea => "bytea",
        DataType::Date => "date",
        DataType::Uuid => "uuid",
        DataType::JSON => "json",
        DataType::JSONB => "jsonb",
        DataType::Regclass => "regclass",
        DataType::Bit(_) => "bit",
        DataType::BitVarying(_) => "varbit",
        DataType::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => "timestamp",
        DataType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => "timestamptz",
        DataType::Time(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => "time",
        DataType::Time(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => "timetz",
        DataType::Interval { .. } => "interval",
        DataType::Custom(name, _) => {
            return name.0.last().and_then(|p| p.as_ident()).map(fold);
        }
        DataType::Array(
            ArrayElemTypeDef::SquareBracket(inner, _) | ArrayElemTypeDef::Parenthesis(inner),
        ) => return type_name(inner),
        _ => return None,
    };
    Some(s.to_owned())
}
