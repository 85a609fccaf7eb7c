//! Shared by the approval integration tests: a real admin server on a loopback port with a
//! real registry, and (in `cdp`) a headless Chromium driven over the DevTools pipe.
//!
//! For the end-to-end test with psql, build the gateway as usual and give its registry to
//! [`AdminServer::start_with`]; the browser half stays the same.
#![allow(dead_code)]

pub mod cdp;

use std::collections::BTreeMap;
use std::sync::Arc;

use airlock::admin::{self, hash_token, AdminConfig, AdminState, Metrics};
use airlock::approval::{
    ApprovalConfig, Binding, FactsSummary, HoldRequest, LinkSecret, MemoryAudit, Registry,
};
use airlock::audit::SessionInfo;
use airlock::policy::{Action, Decision};
use airlock::sql::Kind;

pub const LINK_SECRET: &str = "integration-test-link-secret-0123456789";

/// Token of an approver in these tests: `tok-<name>`.
pub fn token(name: &str) -> String {
    format!("tok-{name}")
}

pub struct AdminServer {
    pub url: String,
    pub registry: Arc<Registry>,
    /// The in-memory approval trail, when this server made its own registry.
    pub audit: Option<MemoryAudit>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl AdminServer {
    /// A fresh registry (in-memory audit, no journal) behind a real admin listener on
    /// 127.0.0.1:0, with tokens for `names`.
    pub async fn start(names: &[&str]) -> AdminServer {
        let audit = MemoryAudit::new();
        let registry = Registry::open(
            ApprovalConfig {
                state_dir: Default::default(),
                ..ApprovalConfig::default()
            },
            Arc::new(audit.clone()),
            vec![],
            Arc::new(Metrics::new()),
        )
        .await
        .expect("registry");
        let mut server = Self::start_with(registry, names).await;
        server.audit = Some(audit);
        server
    }

    /// The admin listener in front of an existing registry (the gateway's, in an E2E test).
    pub async fn start_with(registry: Arc<Registry>, names: &[&str]) -> AdminServer {
        let mut tokens = BTreeMap::new();
        for n in names {
            tokens.insert(n.to_string(), hash_token(&token(n)));
        }
        let config = AdminConfig {
            tokens,
            link_secret: LINK_SECRET.into(),
            ..AdminConfig::default()
        };
        let state = AdminState::new(
            &config,
            registry.clone(),
            Arc::new(Metrics::new()),
            LinkSecret::from_config(LINK_SECRET),
            None,
        )
        .expect("admin state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            admin::serve(listener, admin::router(state), async {
                let _ = rx.await;
            })
            .await
            .expect("admin server");
        });
        AdminServer {
            url,
            registry,
            audit: None,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("admin server task");
        }
    }
}

/// A held DDL statement from `user` on database `shop`, approvable by `approvers`.
pub fn hold(user: &str, sql: &str, approvers: &[&str]) -> HoldRequest {
    HoldRequest {
        decision_id: "dec-test".into(),
        session: SessionInfo {
            session_id: "session-1".into(),
            client_addr: "127.0.0.1:50000".into(),
            user: user.into(),
            application_name: "test-agent".into(),
            database: "shop".into(),
        },
        requester_aliases: vec![],
        sql: sql.into(),
        params: vec![Some("42".into()), None],
        param_types: vec![Some("int4".into()), None],
        binding: Binding::builder("shop", user).sql(sql).build(),
        facts: FactsSummary {
            kinds: vec![Kind::Ddl],
            labels: vec!["DROP TABLE".into()],
            tables: vec!["public.orders".into()],
            pii_columns: vec!["public.customers.email".into()],
        },
        decision: Decision {
            action: Action::Hold,
            rule_id: "ddl.hold".into(),
            rule_source: "policies/default.toml:7".into(),
            reason: "DDL needs approval".into(),
            rewritten: None,
            hold_timeout: None,
            quorum: 1,
            approvers: approvers.iter().map(|s| s.to_string()).collect(),
            pii_columns: vec!["public.customers.email".into()],
        },
    }
}
