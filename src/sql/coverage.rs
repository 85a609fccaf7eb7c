//! Did the analysis read the whole statement?
//!
//! Queries and writes are read clause by clause, and sqlparser grows new clauses and fields
//! with every release. A clause the analysis does not know of would be skipped in silence, and
//! whatever it calls or reads would run as part of a statement decided without it (a function in
//! a `TABLESAMPLE` amount or in a named window's frame once did). So the analysis marks every
//! function call, column reference and query it reads, and afterwards the statement is searched
//! for one it did not mark: such a statement is not understood, and is held as `unknown`.

use std::cell::RefCell;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, Query, Statement, Visit, Visitor};

use super::implied::names_user_type;

/// The nodes of the statement being classified that the analysis read, by address (the tree
/// does not move while it is analyzed). A list, sorted once for the search: marking is on the
/// path of every uncached statement, and most have a handful of nodes.
#[derive(Debug, Default)]
pub(crate) struct Marks(RefCell<Vec<usize>>);

impl Marks {
    pub fn mark<T>(&self, node: &T) {
        self.0.borrow_mut().push(node as *const T as usize);
    }

    fn has<T>(&self, node: &T) -> bool {
        self.0
            .borrow()
            .binary_search(&(node as *const T as usize))
            .is_ok()
    }

    fn seal(&self) {
        let mut v = self.0.borrow_mut();
        v.sort_unstable();
        v.dedup();
    }

    pub fn clear(&self) {
        self.0.borrow_mut().clear();
    }
}

/// Expressions that can read or do something: a call, a column, (through its query) a
/// subquery, or a conversion to a type that is not a built-in (a domain's CHECK may call a
/// function). Literals and built-in operators only combine what these give.
pub(crate) fn is_marked_kind(e: &Expr) -> bool {
    match e {
        Expr::Function(_) | Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        Expr::Cast { data_type, .. } => names_user_type(data_type),
        Expr::TypedString(ts) => names_user_type(&ts.data_type),
        _ => false,
    }
}

/// Whether the part of `stmt` the analysis answers for holds a call, column or query it did
/// not read. Statements the analysis does not read expression by expression (DDL, settings,
/// utility commands) answer for none: their kinds hold them on their own.
pub(crate) fn unread(stmt: &Statement, marks: &Marks) -> bool {
    marks.seal();
    let found = |node: &dyn VisitDyn| node.visit_dyn(&mut Unread { marks }).is_break();
    match stmt {
        Statement::Query(q) => found(&**q),
        Statement::Insert(_)
        | Statement::Update(_)
        | Statement::Delete(_)
        | Statement::Merge(_) => found(stmt),
        Statement::Explain { statement, .. } => unread(statement, marks),
        Statement::Prepare { statement, .. } => unread(statement, marks),
        Statement::Declare { stmts } => stmts.iter().any(|d| match &d.for_query {
            Some(q) => found(&**q),
            None => false,
        }),
        Statement::Copy {
            source: sqlparser::ast::CopySource::Query(q),
            ..
        } => found(&**q),
        Statement::Execute { parameters, .. } => found(parameters),
        _ => false,
    }
}

/// `Visit` is generic over its visitor; this lets [`unread`] treat its parts alike.
trait VisitDyn {
    fn visit_dyn(&self, v: &mut Unread<'_>) -> ControlFlow<()>;
}

impl<T: Visit> VisitDyn for T {
    fn visit_dyn(&self, v: &mut Unread<'_>) -> ControlFlow<()> {
        self.visit(v)
    }
}

struct Unread<'m> {
    marks: &'m Marks,
}

impl Visitor for Unread<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.marks.has(q) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        if is_marked_kind(e) && !self.marks.has(e) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    use super::*;

    /// Marks every node the check asks about, as a full analysis would.
    struct MarkAll<'m>(&'m Marks);

    impl Visitor for MarkAll<'_> {
        type Break = ();
        fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
            self.0.mark(q);
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if is_marked_kind(e) {
                self.0.mark(e);
            }
            ControlFlow::Continue(())
        }
    }

    #[test]
    fn one_node_left_unread_is_found() {
        let sql = "SELECT a FROM t WHERE b = 1 ORDER BY f(c)";
        let stmt = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        let marks = Marks::default();
        assert!(unread(&stmt, &marks), "nothing was read");
        let _ = stmt.visit(&mut MarkAll(&marks));
        assert!(!unread(&stmt, &marks), "everything was read");
        // Forget the call in ORDER BY: found again.
        let Statement::Query(q) = &stmt else {
            unreachable!()
        };
        let Some(sqlparser::ast::OrderBy {
            kind: sqlparser::ast::OrderByKind::Expressions(exprs),
            ..
        }) = &q.order_by
        else {
            unreachable!()
        };
        marks
            .0
            .borrow_mut()
            .retain(|&a| a != &exprs[0].expr as *const Expr as usize);
        assert!(unread(&stmt, &marks));
        // Statements read by kind alone answer for nothing.
        let ddl = Parser::parse_sql(&PostgreSqlDialect {}, "CREATE TABLE x (a int DEFAULT f())")
            .unwrap()
            .remove(0);
        assert!(!unread(&ddl, &Marks::default()));
    }
}
