//! Registry behaviour: separation of duties, quorum, first verdict wins, expiry, withdraw,
//! grants, restart. Time is tokio's paused clock: deadlines are reached by advancing it, never
//! by sleeping.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::mpsc;

use super::*;
use crate::admin::Metrics;
use crate::audit::SessionInfo;
use crate::policy::{Action, Decision};
use crate::sql::Kind;

fn decision(approvers: &[&str], quorum: u32) -> Decision {
    Decision {
        action: Action::Hold,
        rule_id: "ddl.hold".into(),
        rule_source: "policies/default.toml:10".into(),
        reason: "DDL needs approval".into(),
        rewritten: None,
        hold_timeout: None,
        quorum,
        approvers: approvers.iter().map(|s| s.to_string()).collect(),
        pii_columns: vec![],
    }
}

fn hold_for(user: &str, db: &str, sql: &str, params: &[Option<&str>], d: Decision) -> HoldRequest {
    let mut b = Binding::builder(db, user).sql(sql);
    for p in params {
        b = b.param(p.map(str::as_bytes));
    }
    HoldRequest {
        decision_id: format!("dec-{sql}"),
        session: SessionInfo {
            session_id: "s1".into(),
            client_addr: "127.0.0.1:5000".into(),
            user: user.into(),
            application_name: "agent-app".into(),
            database: db.into(),
        },
        requester_aliases: vec![],
        sql: sql.into(),
        params: params.iter().map(|p| p.map(str::to_owned)).collect(),
        param_types: vec![None; params.len()],
        binding: b.build(),
        facts: FactsSummary {
            kinds: vec![Kind::Ddl],
            labels: vec!["DROP TABLE".into()],
            tables: vec!["public.orders".into()],
            pii_columns: vec![],
        },
        decision: d,
    }
}

fn hold(sql: &str, approvers: &[&str], quorum: u32) -> HoldRequest {
    hold_for("agent", "shop", sql, &[], decision(approvers, quorum))
}

fn config() -> ApprovalConfig {
    ApprovalConfig {
        hold_timeout_secs: 60,
        grant_ttl_secs: 600,
        state_dir: None,
        ..ApprovalConfig::default()
    }
}

async fn open_with(cfg: ApprovalConfig) -> (Arc<Registry>, MemoryAudit) {
    let audit = MemoryAudit::new();
    let reg = Registry::open(
        cfg,
        Arc::new(audit.clone()),
        vec![],
        Arc::new(Metrics::new()),
    )
    .await
    .unwrap();
    (reg, audit)
}

async fn open() -> (Arc<Registry>, MemoryAudit) {
    open_with(config()).await
}

fn not_yet(waiter: &mut Waiter) {
    assert_eq!(
        waiter.wait().now_or_never(),
        None,
        "waiter resolved too early"
    );
}

use ApprovalAction as A;

#[tokio::test(start_paused = true)]
async fn approval_releases_the_waiting_client_after_the_audit() {
    let (reg, audit) = open().await;
    let (id, mut waiter) = reg
        .submit(hold("DROP TABLE orders", &["alice"], 1))
        .await
        .unwrap();
    assert_eq!(waiter.view().state, RequestState::Pending);
    assert!(waiter.view().client_waiting);
    not_yet(&mut waiter);

    let r = reg
        .approve(&id, "alice", Channel::Web, Some("looks fine".into()))
        .await
        .unwrap();
    assert_eq!(
        r,
        VerdictResult::Final {
            state: RequestState::Approved,
            delivery: Delivery::ClientReleased
        }
    );
    match waiter.wait().await {
        Outcome::Approved { by } => {
            assert_eq!(by.len(), 1);
            assert_eq!(by[0].approver, "alice");
            assert_eq!(by[0].channel, Channel::Web);
            assert_eq!(by[0].rationale.as_deref(), Some("looks fine"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        audit.actions_for(id.as_str()),
        vec![A::Requested, A::Approve]
    );
    let final_entry = audit.entries().pop().unwrap();
    assert_eq!(final_entry.actor, "alice");
    assert_eq!(final_entry.decision_id, "dec-DROP TABLE orders");
    assert_eq!(reg.get(&id).await.unwrap().state, RequestState::Approved);
}

#[tokio::test(start_paused = true)]
async fn quorum_counts_distinct_people() {
    let (reg, audit) = open().await;
    let (id, mut waiter) = reg
        .submit(hold("DROP TABLE orders", &["alice", "bob", "carol"], 2))
        .await
        .unwrap();
    assert_eq!(
        reg.approve(&id, "alice", Channel::Api, None).await.unwrap(),
        VerdictResult::Recorded { remaining: 1 }
    );
    // The same person twice is still one person.
    assert_eq!(
        reg.approve(&id, "alice", Channel::Cli, None).await.unwrap(),
        VerdictResult::AlreadyVoted
    );
    not_yet(&mut waiter);
    assert_eq!(reg.get(&id).await.unwrap().approvals.len(), 1);
    assert!(matches!(
        reg.approve(&id, "bob", Channel::Teams, None).await.unwrap(),
        VerdictResult::Final {
            state: RequestState::Approved,
            ..
        }
    ));
    match waiter.wait().await {
        Outcome::Approved { by } => {
            let names: Vec<_> = by.iter().map(|v| v.approver.as_str()).collect();
            assert_eq!(names, ["alice", "bob"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        audit.actions_for(id.as_str()),
        vec![A::Requested, A::Approve, A::Refused, A::Approve]
    );
    assert_eq!(audit.refusals_for(id.as_str()), ["already_voted"]);
}

#[tokio::test(start_paused = true)]
async fn requester_never_approves_its_own_request() {
    let (reg, audit) = open().await;
    let mut req = hold_for(
        "alice",
        "shop",
        "DROP TABLE orders",
        &[],
        decision(&["alice", "Alice-Admin", "bob"], 1),
    );
    req.requester_aliases = vec!["alice-admin".into()];
    let (id, mut waiter) = reg.submit(req).await.unwrap();
    for who in ["alice", "ALICE", "Alice-Admin"] {
        assert_eq!(
            reg.approve(&id, who, Channel::Api, None).await.unwrap(),
            VerdictResult::SelfApprovalRefused,
            "{who}"
        );
    }
    // Denying one's own request is a verdict too: refused the same way.
    assert_eq!(
        reg.deny(&id, "alice", Channel::Api, Some("never mind".into()))
            .await
            .unwrap(),
        VerdictResult::SelfApprovalRefused
    );
    not_yet(&mut waiter);
    assert_eq!(reg.get(&id).await.unwrap().state, RequestState::Pending);
    let refused = audit
        .entries()
        .into_iter()
        .filter(|e| e.action == A::Refused)
        .count();
    assert_eq!(refused, 4);
    assert_eq!(audit.refusals_for(id.as_str()), ["self_approval"; 4]);
}

#[tokio::test(start_paused = true)]
async fn only_listed_approvers_count() {
    let (reg, audit) = open().await;
    let (id, mut waiter) = reg
        .submit(hold("DROP TABLE orders", &["alice"], 1))
        .await
        .unwrap();
    assert_eq!(
        reg.approve(&id, "mallory", Channel::Api, None)
            .await
            .unwrap(),
        VerdictResult::NotAnApprover
    );
    assert_eq!(
        reg.deny(&id, "mallory", Channel::Api, Some("no".into()))
            .await
            .unwrap(),
        VerdictResult::NotAnApprover
    );
    not_yet(&mut waiter);
    assert_eq!(
        audit.actions_for(id.as_str()),
        vec![A::Requested, A::Refused, A::Refused]
    );
    assert_eq!(
        audit.refusals_for(id.as_str()),
        ["not_an_approver", "not_an_approver"]
    );
    assert_eq!(
        reg.approve(&RequestId::new("nope"), "alice", Channel::Api, None)
            .await
            .unwrap(),
        VerdictResult::NotFound
    );
}

#[tokio::test(start_paused = true)]
async fn first_final_verdict_wins() {
    let (reg, audit) = open().await;
    let (id, mut waiter) = reg
        .submit(hold("DROP TABLE orders", &["alice", "bob"], 1))
        .await
        .unwrap();
    assert_eq!(
        reg.deny(
            &id,
            "bob",
            Channel::Web,
            Some("not during business hours".into())
        )
        .await
        .unwrap(),
        VerdictResult::Final {
            state: RequestState::Denied,
            delivery: Delivery::ClientReleased
        }
    );
    assert_eq!(
        reg.approve(&id, "alice", Channel::Web, None).await.unwrap(),
        VerdictResult::AlreadyDecided(RequestState::Denied)
    );
    assert_eq!(
        reg.deny(&id, "alice", Channel::Web, Some("also no".into()))
            .await
            .unwrap(),
        VerdictResult::AlreadyDecided(RequestState::Denied)
    );
    assert_eq!(
        waiter.wait().await,
        Outcome::Denied {
            by: "bob".into(),
            rationale: "not during business hours".into()
        }
    );
    assert_eq!(
        audit.actions_for(id.as_str()),
        vec![A::Requested, A::Deny, A::Refused, A::Refused]
    );
    assert_eq!(
        audit.refusals_for(id.as_str()),
        ["already_decided", "already_decided"]
    );
}

#[tokio::test(start_paused = true)]
async fn one_deny_is_final_even_with_partial_quorum() {
    let (reg, _audit) = open().await;
    let (id, mut waiter) = reg
        .submit(hold("DROP TABLE orders", &["alice", "bob"], 2))
        .await
        .unwrap();
    reg.approve(&id, "alice", Channel::Api, None).await.unwrap();
    let r = reg
        .deny(&id, "bob", Channel::Api, Some("no".into()))
        .await
        .unwrap();
    assert!(matches!(
        r,
        VerdictResult::Final {
            state: RequestState::Denied,
            ..
        }
    ));
    assert!(matches!(waiter.wait().await, Outcome::Denied { .. }));
}

#[tokio::test(start_paused = true)]
async fn rationale_is_required_to_deny_and_optionally_to_approve() {
    let (reg, audit) = open().await;
    let (id, mut waiter) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    for r in [None, Some("   ".to_string())] {
        assert_eq!(
            reg.deny(&id, "alice", Channel::Api, r).await.unwrap(),
            VerdictResult::RationaleRequired
        );
    }
    not_yet(&mut waiter);
    assert_eq!(
        audit.actions_for(id.as_str())[1..],
        [A::Refused, A::Refused]
    );
    assert_eq!(
        audit.refusals_for(id.as_str()),
        ["rationale_required", "rationale_required"]
    );
    // Approve without rationale is fine by default.
    assert!(matches!(
        reg.approve(&id, "alice", Channel::Api, None).await.unwrap(),
        VerdictResult::Final { .. }
    ));

    let (reg, _audit) = open_with(ApprovalConfig {
        approve_rationale_required: true,
        ..config()
    })
    .await;
    let (id, _w) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    assert_eq!(
        reg.approve(&id, "alice", Channel::Api, None).await.unwrap(),
        VerdictResult::RationaleRequired
    );
    assert!(matches!(
        reg.approve(&id, "alice", Channel::Api, Some("ticket 42".into()))
            .await
            .unwrap(),
        VerdictResult::Final { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn hold_timeout_releases_the_client_and_a_late_approval_leaves_one_grant() {
    let (reg, audit) = open().await;
    let req = hold_for(
        "agent",
        "shop",
        "DROP TABLE a",
        &[Some("1")],
        decision(&["alice"], 1),
    );
    let binding = req.binding.clone();
    let (id, mut waiter) = reg.submit(req).await.unwrap();
    // Paused clock: the runtime jumps to the hold deadline.
    let started = tokio::time::Instant::now();
    assert_eq!(waiter.wait().await, Outcome::Expired);
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    let view = reg.get(&id).await.unwrap();
    assert_eq!(view.state, RequestState::Pending);
    assert!(!view.client_waiting);
    assert!(view.approvable_remaining_secs > 0);
    assert!(
        reg.take_grant(&binding, "dec-rerun0").await.is_none(),
        "no grant before approval"
    );

    let r = reg.approve(&id, "alice", Channel::Cli, None).await.unwrap();
    assert!(
        matches!(
            r,
            VerdictResult::Final {
                state: RequestState::Approved,
                delivery: Delivery::GrantIssued { .. }
            }
        ),
        "{r:?}"
    );
    let grant = reg.take_grant(&binding, "dec-rerun1").await.expect("grant");
    assert_eq!(grant.request_id, id);
    assert_eq!(grant.approved_by[0].approver, "alice");
    // Single use.
    assert!(reg.take_grant(&binding, "dec-rerun2").await.is_none());
    assert_eq!(
        audit.actions_for(id.as_str()),
        vec![
            A::Requested,
            A::Expire,
            A::Approve,
            A::GrantIssued,
            A::GrantUsed
        ]
    );
    let used = audit
        .entries()
        .into_iter()
        .find(|e| e.action == A::GrantUsed)
        .unwrap();
    assert_eq!(used.decision_id, "dec-rerun1");
    assert_eq!(reg.get(&id).await.unwrap().grant.unwrap().state, "used");
}

#[tokio::test(start_paused = true)]
async fn a_grant_only_matches_the_exact_batch() {
    let (reg, _audit) = open().await;
    let req = hold_for(
        "agent",
        "shop",
        "DELETE FROM t WHERE id = $1",
        &[Some("7")],
        decision(&["alice"], 1),
    );
    let (id, mut waiter) = reg.submit(req).await.unwrap();
    assert_eq!(waiter.wait().await, Outcome::Expired);
    reg.approve(&id, "alice", Channel::Api, None).await.unwrap();

    let binding = |user: &str, db: &str, sql: &str, p: Option<&str>| {
        Binding::builder(db, user)
            .sql(sql)
            .param(p.map(str::as_bytes))
            .build()
    };
    let sql = "DELETE FROM t WHERE id = $1";
    for other in [
        binding("agent", "shop", sql, Some("8")), // another parameter
        binding("agent", "shop", sql, None),      // NULL instead of 7
        binding("agent", "shop", "DELETE FROM t WHERE id = $1 ", Some("7")), // other text
        binding("agent", "other", sql, Some("7")), // another database
        binding("agent2", "shop", sql, Some("7")), // another requester
    ] {
        assert!(reg.take_grant(&other, "dec-x").await.is_none(), "{other:?}");
    }
    assert!(reg
        .take_grant(&binding("agent", "shop", sql, Some("7")), "dec-y")
        .await
        .is_some());
}

#[tokio::test(start_paused = true)]
async fn grants_expire() {
    let (reg, audit) = open().await;
    let req = hold("DROP TABLE a", &["alice"], 1);
    let binding = req.binding.clone();
    let (id, mut waiter) = reg.submit(req).await.unwrap();
    assert_eq!(waiter.wait().await, Outcome::Expired);
    reg.approve(&id, "alice", Channel::Api, None).await.unwrap();
    tokio::time::advance(Duration::from_secs(599)).await;
    assert_eq!(reg.get(&id).await.unwrap().grant.unwrap().state, "unused");
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(reg.take_grant(&binding, "dec-late").await.is_none());
    assert!(audit.actions_for(id.as_str()).contains(&A::GrantExpired));
    assert_eq!(reg.get(&id).await.unwrap().grant.unwrap().state, "expired");
}

#[tokio::test(start_paused = true)]
async fn requests_expire_after_the_approvable_window() {
    let (reg, audit) = open().await;
    let (id, mut waiter) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    assert_eq!(waiter.wait().await, Outcome::Expired);
    // Hold deadline (60 s) + grant window (600 s).
    tokio::time::advance(Duration::from_secs(599)).await;
    assert_eq!(reg.get(&id).await.unwrap().state, RequestState::Pending);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        reg.approve(&id, "alice", Channel::Api, None).await.unwrap(),
        VerdictResult::Expired
    );
    assert_eq!(
        audit.actions_for(id.as_str()),
        vec![A::Requested, A::Expire, A::Expire, A::Refused]
    );
    assert_eq!(audit.refusals_for(id.as_str()), ["expired"]);
    assert_eq!(reg.pending_count().await, 0);
}

#[tokio::test(start_paused = true)]
async fn the_rule_hold_timeout_overrides_the_default() {
    let (reg, _audit) = open().await;
    let mut d = decision(&["alice"], 1);
    d.hold_timeout = Some(Duration::from_secs(5));
    let (_id, mut waiter) = reg
        .submit(hold_for("agent", "shop", "DROP TABLE a", &[], d))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    assert_eq!(waiter.wait().await, Outcome::Expired);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn a_verdict_just_before_the_deadline_wins() {
    let (reg, _audit) = open().await;
    let (id, mut waiter) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_millis(59_999)).await;
    reg.approve(&id, "alice", Channel::Api, None).await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    assert!(waiter.wait().await.is_approved());
}

#[tokio::test(start_paused = true)]
async fn cancel_withdraws_and_closes_the_request() {
    let (reg, audit) = open().await;
    let (id, waiter) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    assert_eq!(
        waiter.withdraw(WithdrawReason::Cancel).await,
        WithdrawResult::Withdrawn
    );
    assert_eq!(
        reg.approve(&id, "alice", Channel::Api, None).await.unwrap(),
        VerdictResult::AlreadyDecided(RequestState::Withdrawn)
    );
    let view = reg.get(&id).await.unwrap();
    assert_eq!(view.state, RequestState::Withdrawn);
    assert_eq!(view.closed_reason.as_deref(), Some("cancel"));
    let withdrawn = &audit.entries()[1];
    assert_eq!(withdrawn.action, A::Withdraw);
    assert_eq!(withdrawn.actor, "agent");
    assert_eq!(withdrawn.channel, "client");
    assert_eq!(withdrawn.rationale.as_deref(), Some("cancel"));
}

#[tokio::test(start_paused = true)]
async fn withdraw_after_a_verdict_reports_the_verdict() {
    let (reg, _audit) = open().await;
    let (id, waiter) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    reg.approve(&id, "alice", Channel::Api, None).await.unwrap();
    assert_eq!(
        waiter.withdraw(WithdrawReason::Disconnect).await,
        WithdrawResult::AlreadyClosed(RequestState::Approved)
    );
}

#[tokio::test(start_paused = true)]
async fn a_released_waiter_cannot_withdraw_the_open_request() {
    let (reg, _audit) = open().await;
    let (id, mut waiter) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    assert_eq!(waiter.wait().await, Outcome::Expired);
    // The client disconnects after its hold expired: the request stays approvable.
    assert_eq!(
        waiter.withdraw(WithdrawReason::Disconnect).await,
        WithdrawResult::AlreadyClosed(RequestState::Pending)
    );
    assert_eq!(reg.get(&id).await.unwrap().state, RequestState::Pending);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_waiter_counts_as_a_disconnect() {
    let (reg, audit) = open().await;
    let (id, waiter) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    drop(waiter);
    assert_eq!(
        reg.approve(&id, "alice", Channel::Api, None).await.unwrap(),
        VerdictResult::AlreadyDecided(RequestState::Withdrawn)
    );
    assert_eq!(
        audit.actions_for(id.as_str()),
        vec![A::Requested, A::Withdraw, A::Refused]
    );
}

#[tokio::test(start_paused = true)]
async fn a_rerun_reattaches_to_its_open_request() {
    let (reg, audit) = open().await;
    let (id, mut first) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    assert_eq!(first.wait().await, Outcome::Expired);

    let mut again = hold("DROP TABLE a", &["alice"], 1);
    again.decision_id = "dec-rerun".into();
    let (id2, mut second) = reg.submit(again).await.unwrap();
    assert_eq!(id2, id, "same batch, same open request");
    assert!(second.view().client_waiting);
    // The stale first waiter cannot withdraw the second one's wait.
    assert_eq!(
        first.withdraw(WithdrawReason::Disconnect).await,
        WithdrawResult::AlreadyClosed(RequestState::Pending)
    );
    // A different statement is a new request.
    let (other, _w) = reg
        .submit(hold("DROP TABLE b", &["alice"], 1))
        .await
        .unwrap();
    assert_ne!(other, id);

    let r = reg.approve(&id, "alice", Channel::Api, None).await.unwrap();
    assert_eq!(
        r,
        VerdictResult::Final {
            state: RequestState::Approved,
            delivery: Delivery::ClientReleased
        }
    );
    assert!(second.wait().await.is_approved());
    let reattached = audit
        .entries()
        .into_iter()
        .find(|e| e.action == A::Reattach)
        .unwrap();
    assert_eq!(reattached.decision_id, "dec-rerun");
}

#[tokio::test(start_paused = true)]
async fn a_failed_verdict_audit_aborts_and_nothing_runs() {
    let (reg, audit) = open().await;
    let (id, mut waiter) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    audit.set_failing(true);
    let r = reg.approve(&id, "alice", Channel::Api, None).await;
    assert!(matches!(r, Err(ApprovalError::Audit(_))), "{r:?}");
    assert!(matches!(waiter.wait().await, Outcome::Aborted { .. }));
    assert_eq!(reg.get(&id).await.unwrap().state, RequestState::Aborted);
}

#[tokio::test(start_paused = true)]
async fn a_failed_vote_audit_is_not_counted() {
    let (reg, audit) = open().await;
    let (id, mut waiter) = reg
        .submit(hold("DROP TABLE a", &["alice", "bob"], 2))
        .await
        .unwrap();
    audit.set_failing(true);
    assert!(reg.approve(&id, "alice", Channel::Api, None).await.is_err());
    audit.set_failing(false);
    assert!(reg.get(&id).await.unwrap().approvals.is_empty());
    assert_eq!(
        reg.approve(&id, "bob", Channel::Api, None).await.unwrap(),
        VerdictResult::Recorded { remaining: 1 }
    );
    not_yet(&mut waiter);
}

#[tokio::test(start_paused = true)]
async fn nothing_is_held_when_the_audit_cannot_record_it() {
    let (reg, audit) = open().await;
    audit.set_failing(true);
    assert!(reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .is_err());
    assert!(reg.list(ListFilter::All).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_binding_for_another_session_is_refused() {
    let (reg, _audit) = open().await;
    let mut req = hold("DROP TABLE a", &["alice"], 1);
    req.binding = Binding::builder("shop", "someone-else")
        .sql("DROP TABLE a")
        .build();
    assert!(matches!(
        reg.submit(req).await,
        Err(ApprovalError::BindingMismatch)
    ));
}

#[tokio::test(start_paused = true)]
async fn shutdown_abandons_pending_requests_and_drops_grants() {
    let (reg, audit) = open().await;
    let (pending, mut waiter) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    let (late, mut late_waiter) = reg
        .submit(hold("DROP TABLE b", &["alice"], 1))
        .await
        .unwrap();
    // Both holds time out; `pending` stays approvable, `late` is approved late (a grant).
    assert_eq!(late_waiter.wait().await, Outcome::Expired);
    assert_eq!(waiter.wait().await, Outcome::Expired);
    reg.approve(&late, "alice", Channel::Api, None)
        .await
        .unwrap();
    let (_fresh, mut fresh_waiter) = reg
        .submit(hold("DROP TABLE c", &["alice"], 1))
        .await
        .unwrap();

    reg.shutdown().await;
    assert_eq!(fresh_waiter.wait().await, Outcome::Abandoned);
    assert!(audit.actions_for(pending.as_str()).contains(&A::Abandoned));
    assert!(audit.actions_for(late.as_str()).contains(&A::GrantDropped));
    assert_eq!(reg.pending_count().await, 0);
}

#[tokio::test(start_paused = true)]
async fn restart_records_what_a_crash_left_open() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ApprovalConfig {
        state_dir: Some(dir.path().to_owned()),
        ..config()
    };
    let (reg, _audit) = open_with(cfg.clone()).await;
    let (pending, _waiter) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    let (granted, mut w) = reg
        .submit(hold("DROP TABLE b", &["alice"], 1))
        .await
        .unwrap();
    let (done, _w3) = reg
        .submit(hold("DROP TABLE c", &["alice"], 1))
        .await
        .unwrap();
    reg.deny(&done, "alice", Channel::Api, Some("no".into()))
        .await
        .unwrap();
    // Let `granted` time out (and `pending` with it, which stays approvable), then approve it.
    assert_eq!(w.wait().await, Outcome::Expired);
    reg.approve(&granted, "alice", Channel::Api, None)
        .await
        .unwrap();
    // Simulated crash: no shutdown, the registry is just gone, and with its process the
    // journal's lock; what is left is the journal files, which the next start finds.
    std::mem::forget(reg);
    let after_crash = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let f = f.unwrap().path();
        if f.extension().is_some_and(|e| e == "json") {
            std::fs::copy(&f, after_crash.path().join(f.file_name().unwrap())).unwrap();
        }
    }
    let cfg = ApprovalConfig {
        state_dir: Some(after_crash.path().to_owned()),
        ..cfg
    };

    let (_reg2, audit2) = open_with(cfg).await;
    assert_eq!(audit2.actions_for(pending.as_str()), vec![A::Abandoned]);
    assert_eq!(audit2.actions_for(granted.as_str()), vec![A::GrantDropped]);
    assert!(
        audit2.actions_for(done.as_str()).is_empty(),
        "closed requests are not re-recorded"
    );
    let abandoned = audit2
        .entries()
        .into_iter()
        .find(|e| e.request_id == pending.as_str())
        .unwrap();
    assert_eq!(abandoned.decision_id, "dec-DROP TABLE a");
    let left: Vec<_> = std::fs::read_dir(after_crash.path())
        .unwrap()
        .map(|f| f.unwrap().file_name())
        .collect();
    assert_eq!(left, vec!["LOCK"], "journal drained");
}

#[test]
fn binding_parts_are_unambiguous() {
    let b = |f: fn(BindingBuilder) -> BindingBuilder| f(Binding::builder("db", "u")).build();
    assert_ne!(b(|x| x.sql("ab").sql("c")), b(|x| x.sql("a").sql("bc")));
    assert_ne!(
        b(|x| x.sql("a").param(None)),
        b(|x| x.sql("a").param(Some(b"")))
    );
    assert_ne!(
        b(|x| x.sql("a").param(Some(b"1"))),
        b(|x| x.sql("a").sql("1"))
    );
    assert_eq!(
        b(|x| x.sql("a").param(Some(b"1"))),
        b(|x| x.sql("a").param(Some(b"1")))
    );
    assert_ne!(
        Binding::builder("db", "u").sql("a").build(),
        Binding::builder("db", "v").sql("a").build()
    );
}

/// Records notifier calls in order.
struct Recorder(mpsc::UnboundedSender<(&'static str, RequestState, bool)>);

impl Notifier for Recorder {
    fn held<'a>(&'a self, req: &'a RequestView) -> BoxFuture<'a, ()> {
        let _ = self.0.send(("held", req.state, req.client_waiting));
        Box::pin(async {})
    }
    fn decided<'a>(&'a self, req: &'a RequestView) -> BoxFuture<'a, ()> {
        let _ = self.0.send(("decided", req.state, req.client_waiting));
        Box::pin(async {})
    }
    fn updated<'a>(&'a self, req: &'a RequestView) -> BoxFuture<'a, ()> {
        let _ = self.0.send(("updated", req.state, req.client_waiting));
        Box::pin(async {})
    }
}

#[tokio::test(start_paused = true)]
async fn notifiers_hear_every_step_in_order() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reg = Registry::open(
        config(),
        Arc::new(MemoryAudit::new()),
        vec![Arc::new(Recorder(tx))],
        Arc::new(Metrics::new()),
    )
    .await
    .unwrap();
    let (id, mut w) = reg
        .submit(hold("DROP TABLE a", &["alice", "bob"], 2))
        .await
        .unwrap();
    reg.approve(&id, "alice", Channel::Api, None).await.unwrap();
    reg.approve(&id, "bob", Channel::Api, None).await.unwrap();
    assert!(w.wait().await.is_approved());
    let mut seen = Vec::new();
    while seen.len() < 3 {
        seen.push(rx.recv().await.unwrap());
    }
    assert_eq!(
        seen,
        vec![
            ("held", RequestState::Pending, true),
            ("updated", RequestState::Pending, true),
            ("decided", RequestState::Approved, false),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn notice_texts_tell_the_agent_what_to_do() {
    let (reg, _audit) = open().await;
    let (id, mut w) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    let n = held_notice(w.view(), "http://gw:6480/");
    assert!(n.message.contains(id.as_str()), "{n:?}");
    assert!(
        n.detail.contains("rule ddl.hold") && n.detail.contains("public.orders"),
        "{n:?}"
    );
    assert!(
        n.hint.contains(&format!("http://gw:6480/approvals/{id}")),
        "{n:?}"
    );
    assert!(n.hint.contains("60 s"), "{n:?}");
    assert_eq!(w.wait().await, Outcome::Expired);
    let view = reg.get(&id).await.unwrap();
    let e = expired_error(&view);
    assert!(
        e.message.contains(id.as_str()) && e.hint.contains("Re-run the same statement"),
        "{e:?}"
    );
    let d = denied_error(id.as_str(), "bob", "too risky");
    assert!(d.message.contains("denied by bob: too risky"), "{d:?}");
}

#[tokio::test(start_paused = true)]
async fn history_is_bounded_but_keeps_unused_grants() {
    let (reg, _audit) = open_with(ApprovalConfig {
        history_limit: 2,
        ..config()
    })
    .await;
    let granted_req = hold("DROP TABLE g", &["alice"], 1);
    let binding = granted_req.binding.clone();
    let (granted, mut w) = reg.submit(granted_req).await.unwrap();
    assert_eq!(w.wait().await, Outcome::Expired);
    reg.approve(&granted, "alice", Channel::Api, None)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let (id, _w) = reg
            .submit(hold(&format!("DROP TABLE t{i}"), &["alice"], 1))
            .await
            .unwrap();
        reg.deny(&id, "alice", Channel::Api, Some("no".into()))
            .await
            .unwrap();
        ids.push(id);
    }
    let all = reg.list(ListFilter::All).await;
    let listed: Vec<_> = all.iter().map(|v| v.id.clone()).collect();
    assert_eq!(
        listed,
        vec![ids[4].clone(), ids[3].clone(), granted.clone()]
    );
    // The grant outlived the trimming and still works.
    assert!(reg.take_grant(&binding, "dec-rerun").await.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_withdraw_handle_outlives_a_dropped_verdict_future() {
    let (reg, audit) = open().await;
    let (id, mut waiter) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    let handle = waiter.withdraw_handle();
    // The session's verdict future owns the waiter; a cancel drops that future first.
    let verdict = async move { waiter.wait().await };
    drop(verdict);
    assert_eq!(
        handle.clone().withdraw(WithdrawReason::Cancel).await,
        WithdrawResult::Withdrawn
    );
    let view = reg.get(&id).await.unwrap();
    assert_eq!(
        view.closed_reason.as_deref(),
        Some("cancel"),
        "not mistaken for a disconnect"
    );
    assert_eq!(
        audit.actions_for(id.as_str()),
        vec![A::Requested, A::Withdraw]
    );
    // Withdrawing twice changes nothing.
    assert_eq!(
        handle.withdraw(WithdrawReason::Disconnect).await,
        WithdrawResult::AlreadyClosed(RequestState::Withdrawn)
    );
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_records_expiry_without_anyone_asking() {
    let (reg, audit) = open().await;
    let (id, waiter) = reg
        .submit(hold("DROP TABLE a", &["alice"], 1))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sweeper = tokio::spawn(reg.clone().run_sweeper(async {
        let _ = stopped.await;
    }));
    // Past the hold deadline and the approvable window; only the sweeper runs meanwhile.
    tokio::time::sleep(Duration::from_secs(60 + 600 + 2)).await;
    assert_eq!(
        audit.actions_for(id.as_str()),
        vec![A::Requested, A::Expire, A::Expire]
    );
    stop.send(()).unwrap();
    sweeper.await.unwrap();
    drop(waiter);
}

#[test]
fn the_journal_defaults_to_a_directory_beside_the_audit_store() {
    let audit = std::path::Path::new("/var/lib/airlock/audit");
    // (configured, in effect): unset → beside the store; explicit kept; "" (off) kept.
    for (configured, in_effect) in [
        (None, "/var/lib/airlock/audit.approvals"),
        (Some("/srv/approvals"), "/srv/approvals"),
        (Some(""), ""),
    ] {
        let cfg = ApprovalConfig {
            state_dir: configured.map(std::path::PathBuf::from),
            ..ApprovalConfig::default()
        }
        .with_state_dir_beside(audit);
        assert_eq!(
            cfg.state_dir.as_deref(),
            Some(std::path::Path::new(in_effect)),
            "{configured:?}"
        );
    }
}
