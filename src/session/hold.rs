//! Handing a held unit to the approval registry: a grant left by a late approval runs it at
//! once; otherwise the registry opens (or re-attaches to) a request, the client gets a NOTICE
//! saying where to approve, and the session waits on the verdict.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;

use super::gate::{HeldUnit, HoldVerdict, Unit, UnitDecision, Withdrawal};
use super::inspect::{Decided, LiveCheck};
use crate::approval::{
    denied_error, expired_error, held_notice, Binding, FactsSummary, HoldRequest, NoticeText,
    Outcome, Registry, WithdrawReason,
};
use crate::audit::SessionInfo;
use crate::policy::{Action, Decision};
use crate::protocol::messages::{self, PgError};
use crate::protocol::sqlstate;
use crate::sql::Facts;

/// What a session needs to hold statements.
#[derive(Clone)]
pub struct HoldContext {
    pub registry: Arc<Registry>,
    /// Base URL of the approval pages, for the NOTICE.
    pub public_url: String,
}

/// The exact identity of a batch, and of what approvers were shown of it: what an approval
/// (or a grant, or a re-run re-attaching to a pending request) is bound to.
///
/// The text alone is not enough: the same text can read something else in another session
/// (a temporary relation, a prepared statement or a search path of its own), so the
/// classification of every statement and the policy's decision over it are part of the
/// identity. A re-run that the gateway now judges differently is a new request.
pub fn binding(unit: &Unit, info: &SessionInfo, facts: &[Facts], decision: &Decision) -> Binding {
    let mut b = Binding::builder(&info.database, &info.user);
    match unit {
        Unit::Simple { text } => b = b.sql(text.trim()),
        Unit::Extended { statements } => {
            for s in statements {
                b = b.sql(s.text.trim());
                // Declared types pick the overload and the cast a parameter goes through.
                let types: Vec<u8> = s.types.iter().flat_map(|t| t.to_be_bytes()).collect();
                b = b.extra(b'T', &types);
                for (i, p) in s.params.iter().enumerate() {
                    b = b.param(p.as_deref().map(str::as_bytes));
                    // `\x41` sent as text and the byte `A` sent in binary display alike.
                    let binary = s.binary.get(i).copied().unwrap_or(false);
                    b = b.extra(b'F', &[u8::from(binary)]);
                }
            }
        }
    }
    b.extra(b'J', &judged(facts, decision)).build()
}

/// What approvers are shown of a batch beyond its text, serialized: each statement's facts
/// and the decision's action, rule, reason, rewrite, quorum, approvers and PII columns.
/// Where the rule is written and how long a client waits are left out: editing the policy
/// file elsewhere, or a hold timeout, does not change what was approved.
fn judged(facts: &[Facts], decision: &Decision) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Judged<'a> {
        facts: &'a [Facts],
        action: Action,
        rule_id: &'a str,
        reason: &'a str,
        rewritten: Option<&'a str>,
        quorum: u32,
        approvers: &'a [String],
        pii_columns: &'a [String],
    }
    let judged = Judged {
        facts,
        action: decision.action,
        rule_id: &decision.rule_id,
        reason: &decision.reason,
        rewritten: decision.rewritten.as_deref(),
        quorum: decision.quorum,
        approvers: &decision.approvers,
        pii_columns: &decision.pii_columns,
    };
    // Facts and decisions are plain data; should serializing ever fail, a fresh random
    // value makes the binding match nothing rather than everything with the same text.
    serde_json::to_vec(&judged).unwrap_or_else(|_| {
        let mut noise = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut noise);
        noise.to_vec()
    })
}

/// The declared type of every bound parameter of `unit`, statement after statement as the
/// request lists the values: a name for the built-in types, `oid N` for others, None where the
/// Parse left the type to the server.
fn declared_types(unit: &Unit) -> Vec<Option<String>> {
    let Unit::Extended { statements } = unit else {
        return Vec::new();
    };
    statements
        .iter()
        .flat_map(|s| (0..s.params.len()).map(|i| type_name(s.types.get(i).copied().unwrap_or(0))))
        .collect()
}

/// The name of a built-in type by OID (arrays as `elem[]`), `oid N` for any other type.
fn type_name(oid: u32) -> Option<String> {
    use postgres_types::{Kind, Type};
    if oid == 0 {
        return None;
    }
    Some(match Type::from_oid(oid) {
        Some(t) => match t.kind() {
            Kind::Array(elem) => format!("{}[]", elem.name()),
            _ => t.name().to_string(),
        },
        None => format!("oid {oid}"),
    })
}

/// Holds a unit: a grant runs it now, otherwise a request is opened and the session waits.
pub async fn hold(
    ctx: &HoldContext,
    unit: &Unit,
    info: &SessionInfo,
    requester_aliases: Vec<String>,
    decided: Decided,
    recheck: Option<LiveCheck>,
) -> UnitDecision {
    let Decided {
        decision,
        id: decision_id,
        classified,
        params,
        ..
    } = decided;
    let Some(id) = decision_id.clone() else {
        return refuse(
            None,
            PgError::error(
                sqlstate::INTERNAL_ERROR,
                "airlock could not audit this statement, so it was not held or run",
            ),
        );
    };
    let binding = binding(unit, info, &classified.statements, &decision);
    if ctx.registry.take_grant(&binding, &id).await.is_some() {
        return UnitDecision::Forward {
            decision_id,
            replacement: None,
        };
    }
    let request = HoldRequest {
        decision_id: id,
        session: info.clone(),
        requester_aliases,
        sql: classified.redacted.clone(),
        params,
        param_types: declared_types(unit),
        binding,
        facts: FactsSummary::from_facts(&classified.statements, &decision),
        decision,
    };
    let (_request_id, mut waiter) = match ctx.registry.submit(request).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "could not open an approval request");
            return refuse(
                decision_id,
                PgError::error(
                    sqlstate::INTERNAL_ERROR,
                    format!("airlock could not open an approval request: {e}"),
                ),
            );
        }
    };
    let view = waiter.view().clone();
    let notice = notice_bytes(&held_notice(&view, &ctx.public_url));
    let withdraw_handle = waiter.withdraw_handle();
    let verdict = async move {
        match waiter.wait().await {
            Outcome::Approved { .. } => match recheck {
                None => HoldVerdict::Approved { replacement: None },
                Some(check) => approved_if_unchanged(&check, view.id.as_str()).await,
            },
            Outcome::Denied { by, rationale } => HoldVerdict::Refused {
                error: error_bytes(
                    sqlstate::INSUFFICIENT_PRIVILEGE,
                    &denied_error(view.id.as_str(), &by, &rationale),
                ),
            },
            Outcome::Expired => HoldVerdict::Refused {
                error: error_bytes(sqlstate::HOLD_EXPIRED, &expired_error(&view)),
            },
            Outcome::Withdrawn => HoldVerdict::Refused {
                error: PgError::error(
                    sqlstate::QUERY_CANCELED,
                    format!(
                        "airlock: request {} was withdrawn; nothing ran",
                        view.id.as_str()
                    ),
                )
                .to_bytes(),
            },
            Outcome::Abandoned => HoldVerdict::Refused {
                error: PgError::error(
                    sqlstate::ADMIN_SHUTDOWN,
                    format!(
                        "airlock is shutting down; request {} was abandoned and nothing ran",
                        view.id.as_str()
                    ),
                )
                .to_bytes(),
            },
            Outcome::Aborted { reason } => HoldVerdict::Refused {
                error: PgError::error(
                    sqlstate::INTERNAL_ERROR,
                    format!(
                        "airlock: request {} could not be completed: {reason}; nothing ran",
                        view.id.as_str()
                    ),
                )
                .to_bytes(),
            },
        }
    }
    .boxed();
    let withdraw = Box::new(move |w: Withdrawal| {
        async move {
            let reason = match w {
                Withdrawal::Cancelled => WithdrawReason::Cancel,
                Withdrawal::Disconnected => WithdrawReason::Disconnect,
            };
            withdraw_handle.withdraw(reason).await;
        }
        .boxed()
    });
    UnitDecision::Hold(HeldUnit {
        decision_id,
        notice,
        verdict,
        withdraw,
    })
}

/// A held statement whose result would not show a newer column runs only if its tables still
/// have the columns the approver was shown.
async fn approved_if_unchanged(check: &LiveCheck, request: &str) -> HoldVerdict {
    let refused = |code: &'static str, message: String, hint: &str| HoldVerdict::Refused {
        error: PgError::error(code, message).with_hint(hint).to_bytes(),
    };
    match check.run().await {
        Ok(None) => HoldVerdict::Approved { replacement: None },
        Ok(Some(_)) => refused(
            sqlstate::CATALOG_CHANGED,
            format!(
                "airlock: {} changed on the server while request {request} waited for \
                 approval, so the approver did not see every column it returns; nothing ran",
                check.subjects()
            ),
            "Run the statement again: it will be decided with the current columns.",
        ),
        Err(e) => refused(
            sqlstate::INSUFFICIENT_PRIVILEGE,
            format!(
                "airlock: request {request} was approved, but {} could not be compared with \
                 the server's catalog ({e}); nothing ran",
                check.subjects()
            ),
            "Run the statement again once the server accepts connections.",
        ),
    }
}

fn refuse(decision_id: Option<String>, e: PgError) -> UnitDecision {
    UnitDecision::Refuse {
        decision_id,
        error: e.to_bytes(),
    }
}

fn notice_bytes(n: &NoticeText) -> Bytes {
    let mut b = BytesMut::new();
    messages::notice_with_hint(&mut b, "01000", &n.message, &n.detail, &n.hint);
    b.freeze()
}

fn error_bytes(code: &'static str, n: &NoticeText) -> Bytes {
    PgError::error(code, n.message.clone())
        .with_detail(n.detail.clone())
        .with_hint(n.hint.clone())
        .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::gate::ExtStatement;

    /// The binding of `unit` with no facts and a fail-closed decision.
    fn bind(unit: &Unit, info: &SessionInfo) -> Binding {
        binding(unit, info, &[], &Decision::fail_closed("test"))
    }

    fn one(params: &[Option<&str>], binary: &[bool]) -> Unit {
        Unit::Extended {
            statements: vec![ExtStatement {
                text: "SELECT $1".into(),
                types: Vec::new(),
                params: params.iter().map(|p| p.map(str::to_owned)).collect(),
                binary: binary.to_vec(),
                parse_only: false,
                bound: true,
            }],
        }
    }

    /// The text `\x41` and the binary byte `A` display alike; an approval of one must not
    /// run the other.
    #[test]
    fn a_binary_parameter_is_bound_apart_from_the_same_text() {
        let info = SessionInfo {
            user: "agent".into(),
            database: "demo".into(),
            ..SessionInfo::default()
        };
        let text = bind(&one(&[Some("\\x41")], &[false]), &info);
        let binary = bind(&one(&[Some("\\x41")], &[true]), &info);
        assert_ne!(text.digest_hex(), binary.digest_hex());
        let again = bind(&one(&[Some("\\x41")], &[true]), &info);
        assert_eq!(binary.digest_hex(), again.digest_hex());
        // Two runs are another batch than one.
        let twice = Unit::Extended {
            statements: [one(&[Some("1")], &[false]), one(&[Some("2")], &[false])]
                .into_iter()
                .flat_map(|u| match u {
                    Unit::Extended { statements } => statements,
                    Unit::Simple { .. } => Vec::new(),
                })
                .collect(),
        };
        let last_only = bind(&one(&[Some("2")], &[false]), &info);
        assert_ne!(bind(&twice, &info).digest_hex(), last_only.digest_hex());
    }

    /// Declared parameter types pick the overload a call runs: another typing of the same
    /// text and values is another batch.
    #[test]
    fn declared_parameter_types_are_bound() {
        let info = SessionInfo {
            user: "agent".into(),
            database: "demo".into(),
            ..SessionInfo::default()
        };
        let typed = |types: &[u32]| {
            let mut u = one(&[Some("5")], &[false]);
            if let Unit::Extended { statements } = &mut u {
                statements[0].types = types.to_vec();
            }
            bind(&u, &info).digest_hex()
        };
        assert_ne!(typed(&[25]), typed(&[23]));
        assert_ne!(typed(&[25]), typed(&[]));
        assert_eq!(typed(&[25]), typed(&[25]));
    }

    /// Approvers see each parameter's declared type next to its value, across the
    /// statements of a batch; a type the Parse left open shows as none.
    #[test]
    fn declared_types_line_up_with_the_values() {
        let mut u = one(&[Some("5"), Some("x"), Some("{a}")], &[false, false, false]);
        if let Unit::Extended { statements } = &mut u {
            statements[0].types = vec![23, 0, 1009];
            let mut second = statements[0].clone();
            second.params = vec![Some("7".into())];
            second.types = vec![99999];
            statements.push(second);
        }
        assert_eq!(
            declared_types(&u),
            [
                Some("int4".to_string()),
                None,
                Some("text[]".to_string()),
                Some("oid 99999".to_string())
            ]
        );
        assert!(declared_types(&Unit::Simple {
            text: "SELECT 1".into()
        })
        .is_empty());
    }

    /// A password sent as a parameter is redacted in the request, but the grant is bound to
    /// what runs: two batches that differ only in the password display alike and bind apart.
    #[test]
    fn a_redacted_parameter_still_binds_its_value() {
        let info = SessionInfo {
            user: "agent".into(),
            database: "demo".into(),
            ..SessionInfo::default()
        };
        let a = one(&[Some("host=h password=first")], &[false]);
        let b = one(&[Some("host=h password=second")], &[false]);
        let shown = |u: &Unit| match u {
            Unit::Extended { statements } => statements[0]
                .params
                .iter()
                .map(|p| {
                    p.as_deref()
                        .and_then(|v| crate::sql::redact_param(v, false))
                })
                .collect::<Vec<_>>(),
            Unit::Simple { .. } => Vec::new(),
        };
        assert_eq!(shown(&a), shown(&b));
        assert_eq!(shown(&a), [Some("host=h password='***'".to_owned())]);
        assert_ne!(bind(&a, &info).digest_hex(), bind(&b, &info).digest_hex());
    }

    /// The same text judged otherwise (other facts, another rule, quorum or approvers) is
    /// another batch; where the rule is written and the hold timeout are not part of it.
    #[test]
    fn what_approvers_were_shown_is_bound() {
        let info = SessionInfo {
            user: "agent".into(),
            database: "demo".into(),
            ..SessionInfo::default()
        };
        let unit = Unit::Simple {
            text: "SELECT name FROM products".into(),
        };
        let read = crate::sql::Facts {
            kind: crate::sql::Kind::Read,
            label: "SELECT".into(),
            ..crate::sql::Facts::unknown("SELECT")
        };
        let decision = Decision {
            action: Action::Hold,
            rule_id: "products".into(),
            rule_source: "policy.toml:1".into(),
            reason: "looked at".into(),
            rewritten: None,
            hold_timeout: Some(std::time::Duration::from_secs(1)),
            quorum: 1,
            approvers: vec!["alice".into()],
            pii_columns: Vec::new(),
        };
        let digest = |facts: &[crate::sql::Facts], d: &Decision| {
            binding(&unit, &info, facts, d).digest_hex()
        };
        let base = digest(std::slice::from_ref(&read), &decision);
        assert_eq!(base, digest(std::slice::from_ref(&read), &decision.clone()));
        let unknown = crate::sql::Facts::unknown("SELECT");
        assert_ne!(base, digest(&[unknown], &decision));
        assert_ne!(base, digest(&[], &decision));
        let changed: [fn(&mut Decision); 5] = [
            |d| d.rule_id = "default.unknown".into(),
            |d| d.reason = "other".into(),
            |d| d.quorum = 2,
            |d| d.approvers.push("bob".into()),
            |d| d.pii_columns.push("public.customers.ssn".into()),
        ];
        for change in changed {
            let mut d = decision.clone();
            change(&mut d);
            assert_ne!(base, digest(std::slice::from_ref(&read), &d), "{d:?}");
        }
        let moved = Decision {
            rule_source: "policy.toml:9".into(),
            hold_timeout: Some(std::time::Duration::from_secs(60)),
            ..decision.clone()
        };
        assert_eq!(base, digest(std::slice::from_ref(&read), &moved));
    }
}
