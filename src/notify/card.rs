//! Adaptive Cards for held requests: a pure function of the request, no I/O.
//!
//! Teams renders Adaptive Card schema 1.5 at most, and a Workflows post must stay under about
//! 28 KB, so every card here declares version 1.5, avoids `CodeBlock` (it breaks Workflows
//! posts), and is cut to [`MAX_CARD_BYTES`] by shortening the statement first and everything
//! else to fixed bounds. Untrusted text (anything the agent controls) only goes into `TextRun`s,
//! which Teams shows without interpreting markdown, after [`untrusted::sanitize`].
//!
//! Four cards:
//! - [`webhook_card`]: details plus an `Action.OpenUrl` to the signed approval page link;
//! - [`bot_base_card`]: what everyone in the channel sees: details, no buttons, and a `refresh`
//!   limited to the approvers' Entra object ids, so their Teams client fetches
//!   [`bot_approver_card`] (with `Input.Text` rationale and `Action.Execute` Approve/Deny);
//! - [`verdict_card`]: the final state, by whom, when and why.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::text;
use crate::untrusted;

/// Upper bound of a serialized card, leaving room for the message envelope under the ~20 KB
/// that Teams Workflows reliably accepts.
pub const MAX_CARD_BYTES: usize = 19 * 1024;
/// Teams honours at most this many user ids in `refresh.userIds`.
pub const MAX_REFRESH_USERS: usize = 60;
/// `verb` of the Approve button.
pub const VERB_APPROVE: &str = "approve";
/// `verb` of the Deny button.
pub const VERB_DENY: &str = "deny";
/// `verb` of the automatic refresh.
pub const VERB_REFRESH: &str = "refresh";
/// Id of the rationale input; Teams merges it into the action's `data`.
pub const INPUT_RATIONALE: &str = "rationale";
/// Key of the request id in the actions' `data`.
pub const DATA_REQUEST_ID: &str = "requestId";
/// Longest rationale the card asks for.
pub const MAX_RATIONALE_CHARS: usize = 1000;

const MAX_FIELD_CHARS: usize = 200;
const MAX_LIST_ITEMS: usize = 30;
const MAX_REASON_CHARS: usize = 500;
const MAX_APPROVERS_SHOWN: usize = 20;
/// Parameters shown on a card, and characters of each value: enough for the usual batch, and
/// bounded so the statement keeps most of the card.
const MAX_PARAMS_SHOWN: usize = 20;
const MAX_PARAM_CHARS: usize = 100;
/// Characters of a parameter's declared type shown.
const MAX_TYPE_CHARS: usize = 40;
const ELLIPSIS: &str = "…";

/// What a card shows about one held request. The approval registry builds it from its own view
/// of the request; the SQL text must already be redacted (no passwords).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRequest {
    pub request_id: String,
    /// Agent identity (gateway user).
    pub requester: String,
    /// The client's `application_name`, when it sent one.
    pub application_name: Option<String>,
    pub database: String,
    /// The statement(s), redacted.
    pub sql: String,
    /// Bound parameters, in order: the declared type (None: left to the server) and the
    /// value as display text (None: NULL), secrets redacted.
    pub params: Vec<(Option<String>, Option<String>)>,
    /// Id of the policy rule that held the statement.
    pub rule_id: String,
    /// Why the rule holds it, as the policy words it.
    pub reason: String,
    /// Statement kind (`ddl`, `role`, `export`, …).
    pub kind: String,
    /// Tables read or written.
    pub tables: Vec<String>,
    /// PII columns involved (`table.column`).
    pub pii_columns: Vec<String>,
    pub expires_at: OffsetDateTime,
    /// Signed link to the approval page.
    pub approve_url: String,
    /// Entra object ids of the people who may approve (for `refresh.userIds`).
    pub approver_aad_ids: Vec<String>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeState {
    Approved,
    Denied,
    Expired,
    /// The client cancelled or disconnected.
    Withdrawn,
    /// The gateway restarted while the request was pending.
    Abandoned,
    /// A final verdict could not be written to the audit, so nothing ran.
    Aborted,
}

impl OutcomeState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeState::Approved => "approved",
            OutcomeState::Denied => "denied",
            OutcomeState::Expired => "expired",
            OutcomeState::Withdrawn => "withdrawn",
            OutcomeState::Abandoned => "abandoned",
            OutcomeState::Aborted => "aborted",
        }
    }

    fn heading(self) -> &'static str {
        match self {
            OutcomeState::Approved => "Approved",
            OutcomeState::Denied => "Denied",
            OutcomeState::Expired => "Expired without a decision",
            OutcomeState::Withdrawn => "Withdrawn by the client",
            OutcomeState::Abandoned => "Abandoned (gateway restarted)",
            OutcomeState::Aborted => "Not run: the verdict could not be recorded",
        }
    }

    fn color(self) -> &'static str {
        match self {
            OutcomeState::Approved => "good",
            OutcomeState::Denied | OutcomeState::Aborted => "attention",
            _ => "warning",
        }
    }
}

/// The final state of a request, as the registry reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardOutcome {
    pub request_id: String,
    pub state: OutcomeState,
    /// Who decided (several names when a quorum approved); empty for expiry and withdrawal.
    pub by: Vec<String>,
    pub rationale: Option<String>,
    pub decided_at: OffsetDateTime,
}

/// A line shown above the buttons of an approver's card after they clicked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub tone: Tone,
}

/// Colour of a [`Notice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Warning,
    Attention,
}

impl Tone {
    fn color(self) -> &'static str {
        match self {
            Tone::Good => "good",
            Tone::Warning => "warning",
            Tone::Attention => "attention",
        }
    }
}

/// The card posted to a Workflows webhook: details and a button to the approval page.
pub fn webhook_card(req: &CardRequest) -> Value {
    let mut head = vec![heading(req)];
    head.extend(detail_lines(req));
    let mut tail = param_lines(req);
    tail.push(json!({
        "type": "TextBlock",
        "text": "Open the approval page to approve or deny.",
        "wrap": true,
        "isSubtle": true,
    }));
    let actions = json!([{
        "type": "Action.OpenUrl",
        "title": "Review and decide",
        "url": req.approve_url,
    }]);
    assemble(head, &req.sql, tail, Some(actions), None)
}

/// The card the bot posts for everyone: details without buttons; approvers' clients refresh it
/// into [`bot_approver_card`].
pub fn bot_base_card(req: &CardRequest, notice: Option<&Notice>) -> Value {
    let mut head = vec![heading(req)];
    head.extend(detail_lines(req));
    let mut tail = param_lines(req);
    tail.extend(notice.map(notice_block));
    tail.push(json!({
        "type": "TextBlock",
        "text": "Waiting for an approver. Approvers see Approve and Deny here.",
        "wrap": true,
        "isSubtle": true,
    }));
    assemble(head, &req.sql, tail, None, Some(refresh(req)))
}

/// The card an approver sees: details, an optional notice about their last click, a rationale
/// box and Approve/Deny. Approve is offered only when the card shows the statement and every
/// parameter whole ([`approvable_in_card`]); otherwise the card offers Deny and the approval
/// page, which shows everything.
pub fn bot_approver_card(req: &CardRequest, notice: Option<&Notice>) -> Value {
    let whole = params_whole(req);
    let build = |approve: bool| {
        let mut head = vec![heading(req)];
        head.extend(detail_lines(req));
        let mut tail = param_lines(req);
        if let Some(n) = notice {
            tail.push(notice_block(n));
        }
        if !approve {
            tail.push(json!({
                "type": "TextBlock",
                "text": "Too long to approve from Teams: the card cannot show all of it. \
                         Approve on the approval page, after reading it whole.",
                "wrap": true,
                "weight": "Bolder",
            }));
        }
        tail.push(json!({
            "type": "Input.Text",
            "id": INPUT_RATIONALE,
            "label": "Rationale",
            "placeholder": "Required to deny; recorded in the audit",
            "isMultiline": true,
            "maxLength": MAX_RATIONALE_CHARS,
        }));
        let data = json!({ DATA_REQUEST_ID: req.request_id });
        let mut actions = Vec::new();
        if approve {
            actions.push(json!({
                "type": "Action.Execute",
                "title": "Approve",
                "verb": VERB_APPROVE,
                "data": data,
                "style": "positive",
            }));
        }
        actions.push(json!({
            "type": "Action.Execute",
            "title": "Deny",
            "verb": VERB_DENY,
            "data": data,
            "style": "destructive",
        }));
        if !approve && !req.approve_url.is_empty() {
            actions.push(json!({
                "type": "Action.OpenUrl",
                "title": "Open the approval page",
                "url": req.approve_url,
            }));
        }
        assemble_checked(
            head,
            &req.sql,
            tail,
            Some(Value::Array(actions)),
            Some(refresh(req)),
        )
    };
    let (card, cut) = build(whole);
    if whole && !cut {
        card
    } else {
        build(false).0
    }
}

/// Whether an approver's card shows the statement and every bound parameter whole, which is
/// what an approval from the card is bound to. A statement cut to fit the card's size, a value
/// clipped, or parameters past the first [`MAX_PARAMS_SHOWN`] would let a long batch hide its
/// end from whoever approves it in Teams; such a request is approved on the approval page.
pub fn approvable_in_card(req: &CardRequest) -> bool {
    // The card offers Approve exactly when nothing was cut.
    bot_approver_card(req, None)["actions"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x["verb"] == VERB_APPROVE))
}

/// Every parameter is listed, each value and type in full.
fn params_whole(req: &CardRequest) -> bool {
    req.params.len() <= MAX_PARAMS_SHOWN
        && req.params.iter().all(|(ty, value)| {
            ty.as_deref()
                .is_none_or(|t| untrusted::sanitize(t, false).chars().count() <= MAX_TYPE_CHARS)
                && value.as_deref().is_none_or(|v| {
                    untrusted::sanitize(v, false).chars().count() <= MAX_PARAM_CHARS
                })
        })
}

/// The card that replaces (bot) or follows (webhook) the request card once it is settled.
/// With the request at hand the card repeats its details; without it (e.g. after a restart)
/// it names the request id only.
pub fn verdict_card(req: Option<&CardRequest>, outcome: &CardOutcome) -> Value {
    let mut head = vec![json!({
        "type": "TextBlock",
        "text": outcome.state.heading(),
        "size": "Large",
        "weight": "Bolder",
        "color": outcome.state.color(),
        "wrap": true,
    })];
    head.push(line("Request", &outcome.request_id));
    if !outcome.by.is_empty() {
        let by = text::clip_list(&outcome.by, MAX_APPROVERS_SHOWN, MAX_FIELD_CHARS);
        head.push(line("By", &by));
    }
    if let Some(r) = &outcome.rationale {
        head.push(json!({
            "type": "RichTextBlock",
            "inlines": [
                { "type": "TextRun", "text": "Rationale: ", "weight": "Bolder" },
                { "type": "TextRun", "text": untrusted::sanitize(&clip_chars(r, MAX_RATIONALE_CHARS), true) },
            ],
        }));
    }
    head.push(json!({
        "type": "TextBlock",
        "text": format!("At {}", date_time(outcome.decided_at)),
        "wrap": true,
        "isSubtle": true,
    }));
    match req {
        Some(req) => {
            head.push(json!({ "type": "TextBlock", "text": " ", "separator": true }));
            head.extend(detail_lines(req));
            assemble(head, &req.sql, param_lines(req), None, None)
        }
        None => card(head, None, None),
    }
}

/// A short card for answers about a request whose details this gateway no longer has.
pub fn notice_card(request_id: &str, notice: &Notice) -> Value {
    card(
        vec![
            line("Request", &text::clip_line(request_id, MAX_FIELD_CHARS)),
            notice_block(notice),
        ],
        None,
        None,
    )
}

fn heading(req: &CardRequest) -> Value {
    json!({
        "type": "RichTextBlock",
        "inlines": [
            { "type": "TextRun", "text": "Held for approval: ", "size": "Large", "weight": "Bolder" },
            {
                "type": "TextRun",
                "text": format!("{} statement", text::clip_line(&req.kind, 40)),
                "size": "Large",
                "weight": "Bolder",
            },
        ],
    })
}

fn detail_lines(req: &CardRequest) -> Vec<Value> {
    let mut lines = vec![
        line(
            "Request",
            &text::clip_line(&req.request_id, MAX_FIELD_CHARS),
        ),
        line(
            "Requester",
            &text::clip_line(&req.requester, MAX_FIELD_CHARS),
        ),
    ];
    if let Some(app) = req.application_name.as_deref().filter(|a| !a.is_empty()) {
        lines.push(line("Application", &text::clip_line(app, MAX_FIELD_CHARS)));
    }
    lines.push(line(
        "Database",
        &text::clip_line(&req.database, MAX_FIELD_CHARS),
    ));
    lines.push(line(
        "Rule",
        &format!(
            "{} — {}",
            text::clip_line(&req.rule_id, MAX_FIELD_CHARS),
            text::clip_line(&req.reason, MAX_REASON_CHARS)
        ),
    ));
    lines.push(line("Kind", &text::clip_line(&req.kind, 40)));
    lines.push(line(
        "Tables",
        &text::clip_list(&req.tables, MAX_LIST_ITEMS, MAX_FIELD_CHARS),
    ));
    lines.push(line(
        "PII columns",
        &text::clip_list(&req.pii_columns, MAX_LIST_ITEMS, MAX_FIELD_CHARS),
    ));
    lines.push(json!({
        "type": "TextBlock",
        "text": format!("**Expires:** {}", date_time(req.expires_at)),
        "wrap": true,
    }));
    lines
}

/// The bound parameters under the statement, one line each (`$1 (int4): 42`): an approval is
/// bound to these values, so whoever approves from the card must see them. Past
/// [`MAX_PARAMS_SHOWN`] or [`MAX_PARAM_CHARS`] the approval page has the rest.
fn param_lines(req: &CardRequest) -> Vec<Value> {
    if req.params.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![json!({
        "type": "TextBlock",
        "text": "**Parameters**",
        "wrap": true,
    })];
    let mut clipped = false;
    for (i, (ty, value)) in req.params.iter().take(MAX_PARAMS_SHOWN).enumerate() {
        let label = match ty {
            Some(t) => format!("${} ({})", i + 1, text::clip_line(t, MAX_TYPE_CHARS)),
            None => format!("${}", i + 1),
        };
        let shown = match value {
            Some(v) => {
                clipped |= untrusted::sanitize(v, false).chars().count() > MAX_PARAM_CHARS;
                text::clip_line(v, MAX_PARAM_CHARS)
            }
            None => "NULL".into(),
        };
        lines.push(line(&label, &shown));
    }
    let hidden = req.params.len().saturating_sub(MAX_PARAMS_SHOWN);
    if hidden > 0 || clipped {
        let what = if hidden > 0 {
            format!("{hidden} more parameters and ")
        } else {
            String::new()
        };
        lines.push(json!({
            "type": "TextBlock",
            "text": format!("Cut for Teams: the approval page has {what}every value in full."),
            "wrap": true,
            "isSubtle": true,
            "size": "Small",
        }));
    }
    lines
}

/// `Label: value`, the value shown literally.
fn line(label: &str, value: &str) -> Value {
    json!({
        "type": "RichTextBlock",
        "inlines": [
            { "type": "TextRun", "text": format!("{label}: "), "weight": "Bolder" },
            { "type": "TextRun", "text": untrusted::sanitize(value, false) },
        ],
    })
}

fn notice_block(n: &Notice) -> Value {
    json!({
        "type": "RichTextBlock",
        "inlines": [{
            "type": "TextRun",
            "text": untrusted::sanitize(&n.text, false),
            "weight": "Bolder",
            "color": n.tone.color(),
        }],
    })
}

fn refresh(req: &CardRequest) -> Value {
    let users: Vec<&String> = req
        .approver_aad_ids
        .iter()
        .filter(|id| !id.is_empty())
        .take(MAX_REFRESH_USERS)
        .collect();
    json!({
        "action": {
            "type": "Action.Execute",
            "title": "Refresh",
            "verb": VERB_REFRESH,
            "data": { DATA_REQUEST_ID: req.request_id },
        },
        "userIds": users,
    })
}

/// Teams shows `{{DATE()}}`/`{{TIME()}}` in the viewer's own time zone.
fn date_time(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let stamp = at
        .replace_nanosecond(0)
        .unwrap_or(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string());
    format!("{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}} ({stamp})")
}

fn clip_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn card(body: Vec<Value>, actions: Option<Value>, refresh: Option<Value>) -> Value {
    let mut card = json!({
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.5",
        "body": body,
        "msteams": { "width": "Full" },
    });
    if let Some(a) = actions {
        card["actions"] = a;
    }
    if let Some(r) = refresh {
        card["refresh"] = r;
    }
    card
}

/// Builds the card with the statement between `head` and `tail`, cutting the statement so the
/// whole card stays within [`MAX_CARD_BYTES`].
fn assemble(
    head: Vec<Value>,
    sql: &str,
    tail: Vec<Value>,
    actions: Option<Value>,
    refresh: Option<Value>,
) -> Value {
    assemble_checked(head, sql, tail, actions, refresh).0
}

/// [`assemble`], also saying whether the statement had to be cut.
fn assemble_checked(
    head: Vec<Value>,
    sql: &str,
    tail: Vec<Value>,
    actions: Option<Value>,
    refresh: Option<Value>,
) -> (Value, bool) {
    let sql = untrusted::sanitize(sql, true);
    let build = |shown: &str, note: Option<String>| {
        let mut body = head.clone();
        body.push(json!({
            "type": "Container",
            "style": "emphasis",
            "items": [{
                "type": "RichTextBlock",
                "inlines": [{ "type": "TextRun", "text": shown, "fontType": "Monospace" }],
            }],
        }));
        if let Some(note) = note {
            body.push(json!({
                "type": "TextBlock",
                "text": note,
                "wrap": true,
                "isSubtle": true,
                "size": "Small",
            }));
        }
        body.extend(tail.iter().cloned());
        card(body, actions.clone(), refresh.clone())
    };
    let full = build(&sql, None);
    if serialized_len(&full) <= MAX_CARD_BYTES {
        return (full, false);
    }
    // Measure everything but the statement, with the longest note we could add.
    let total = sql.len();
    let note = |shown: usize| {
        format!("Statement cut for Teams: first {shown} of {total} bytes shown. The approval page has all of it.")
    };
    let frame = serialized_len(&build("", Some(note(total))));
    let budget = MAX_CARD_BYTES.saturating_sub(frame + ELLIPSIS.len());
    let shown = text::prefix_within(&sql, budget);
    let cut = build(&format!("{shown}{ELLIPSIS}"), Some(note(shown.len())));
    if serialized_len(&cut) <= MAX_CARD_BYTES {
        (cut, true)
    } else {
        // Only reachable if the bounded fields alone overflow; never post an oversized card.
        (build("", Some(note(0))), true)
    }
}

fn serialized_len(v: &Value) -> usize {
    serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> CardRequest {
        CardRequest {
            request_id: "01HZX3R9K2".into(),
            requester: "agent_ci".into(),
            application_name: Some("migrator".into()),
            database: "shop".into(),
            sql: "ALTER TABLE orders DROP COLUMN note".into(),
            params: vec![],
            rule_id: "ddl-needs-approval".into(),
            reason: "schema changes need a human".into(),
            kind: "ddl".into(),
            tables: vec!["public.orders".into()],
            pii_columns: vec![],
            expires_at: time::macros::datetime!(2030-01-02 03:04:05 UTC),
            approve_url: "https://airlock.example/approvals/01HZX3R9K2?sig=abc".into(),
            approver_aad_ids: vec!["aad-alice".into(), "aad-bob".into()],
        }
    }

    fn texts(card: &Value) -> String {
        serde_json::to_string(card).unwrap()
    }

    #[test]
    fn webhook_card_links_to_the_page_and_has_no_execute() {
        let c = webhook_card(&sample());
        assert_eq!(c["version"], "1.5");
        assert_eq!(c["actions"][0]["type"], "Action.OpenUrl");
        assert_eq!(c["actions"][0]["url"], sample().approve_url);
        let s = texts(&c);
        assert!(!s.contains("Action.Execute"));
        assert!(!s.contains("CodeBlock"));
        assert!(s.contains("ALTER TABLE orders DROP COLUMN note"));
        assert!(s.contains("agent_ci") && s.contains("migrator") && s.contains("public.orders"));
        assert!(s.contains("{{DATE(2030-01-02T03:04:05Z, SHORT)}}"));
    }

    #[test]
    fn base_card_refreshes_for_approvers_only_and_has_no_buttons() {
        let c = bot_base_card(&sample(), None);
        assert!(c.get("actions").is_none());
        assert_eq!(c["refresh"]["userIds"], json!(["aad-alice", "aad-bob"]));
        assert_eq!(c["refresh"]["action"]["verb"], VERB_REFRESH);
        assert_eq!(
            c["refresh"]["action"]["data"][DATA_REQUEST_ID],
            "01HZX3R9K2"
        );
    }

    #[test]
    fn approver_card_has_rationale_and_both_verbs() {
        let n = Notice {
            text: "Rationale required to deny".into(),
            tone: Tone::Warning,
        };
        let c = bot_approver_card(&sample(), Some(&n));
        let verbs: Vec<&str> = c["actions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["verb"].as_str().unwrap())
            .collect();
        assert_eq!(verbs, [VERB_APPROVE, VERB_DENY]);
        assert!(texts(&c).contains("\"id\":\"rationale\""));
        assert!(texts(&c).contains("Rationale required to deny"));
    }

    /// Approve is offered only on a card that shows the statement and every parameter whole;
    /// with a notice (a longer card) a statement that just fits may lose it, never gain it.
    #[test]
    fn approve_only_on_a_card_that_shows_everything() {
        let verbs = |c: &Value| -> Vec<String> {
            c["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    a["verb"]
                        .as_str()
                        .unwrap_or(a["type"].as_str().unwrap())
                        .to_string()
                })
                .collect()
        };
        assert!(approvable_in_card(&sample()));
        let mut cases = Vec::new();
        let mut r = sample();
        r.sql = format!(
            "SELECT 1 /* {} */; DROP TABLE customers",
            "x".repeat(MAX_CARD_BYTES)
        );
        cases.push(r);
        let mut r = sample();
        r.params = vec![(None, Some("y".repeat(MAX_PARAM_CHARS + 1)))];
        cases.push(r);
        let mut r = sample();
        r.params = vec![(Some("t".repeat(MAX_TYPE_CHARS + 1)), Some("1".into()))];
        cases.push(r);
        let mut r = sample();
        r.params = vec![(None, Some("1".into())); MAX_PARAMS_SHOWN + 1];
        cases.push(r);
        for r in &cases {
            assert!(!approvable_in_card(r), "{:?}", r.params.len());
            let c = bot_approver_card(r, None);
            assert_eq!(verbs(&c), [VERB_DENY, "Action.OpenUrl"]);
            assert!(texts(&c).contains("Too long to approve from Teams"));
            assert!(serialized_len(&c) <= MAX_CARD_BYTES);
        }
        // Exactly at the limits, everything shows and Approve stays.
        let mut r = sample();
        r.params = vec![
            (
                Some("t".repeat(MAX_TYPE_CHARS)),
                Some("y".repeat(MAX_PARAM_CHARS))
            );
            MAX_PARAMS_SHOWN
        ];
        assert!(approvable_in_card(&r));
        assert_eq!(
            verbs(&bot_approver_card(&r, None)),
            [VERB_APPROVE, VERB_DENY]
        );
    }

    #[test]
    fn untrusted_text_only_in_text_runs() {
        let mut r = sample();
        r.application_name = Some("[Approve here](https://evil.example)".into());
        r.params = vec![(None, Some("[Approve here](https://evil.example/p)".into()))];
        let c = webhook_card(&r);
        // The only TextBlocks (markdown-rendered) carry our own words.
        fn walk(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if m.get("type") == Some(&json!("TextBlock")) {
                        out.push(m["text"].as_str().unwrap().to_string());
                    }
                    m.values().for_each(|x| walk(x, out));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
                _ => {}
            }
        }
        let mut blocks = Vec::new();
        walk(&c, &mut blocks);
        assert!(blocks.iter().all(|t| !t.contains("evil")), "{blocks:?}");
        assert!(texts(&c).contains("evil.example"));
        assert!(texts(&c).contains("evil.example/p"));
    }

    /// An approval is bound to its parameter values, so every card of a request shows them,
    /// with the declared type where there is one.
    #[test]
    fn parameters_are_shown_with_their_types() {
        let mut r = sample();
        r.params = vec![
            (Some("int4".into()), Some("42".into())),
            (None, None),
            (None, Some("[Approve here](https://evil.example)".into())),
        ];
        let outcome = CardOutcome {
            request_id: r.request_id.clone(),
            state: OutcomeState::Approved,
            by: vec!["alice".into()],
            rationale: None,
            decided_at: r.expires_at,
        };
        for c in [
            webhook_card(&r),
            bot_base_card(&r, None),
            bot_approver_card(&r, None),
            verdict_card(Some(&r), &outcome),
        ] {
            let t = texts(&c);
            assert!(t.contains("**Parameters**"), "{t}");
            assert!(t.contains("\"$1 (int4): \""), "{t}");
            assert!(t.contains("\"42\""), "{t}");
            assert!(t.contains("\"$2: \"") && t.contains("\"NULL\""), "{t}");
            assert!(!t.contains("Cut for Teams"), "{t}");
        }
        assert!(!texts(&bot_approver_card(&sample(), None)).contains("Parameters"));
    }

    #[test]
    fn many_or_long_parameters_are_cut_with_a_note() {
        let mut r = sample();
        r.params = (0..25)
            .map(|i| {
                (
                    Some("text".into()),
                    Some(format!("{i}:{}", "é".repeat(500))),
                )
            })
            .collect();
        r.sql = "SELECT 1".repeat(10_000);
        let c = bot_approver_card(&r, None);
        let t = texts(&c);
        assert!(serialized_len(&c) <= MAX_CARD_BYTES);
        assert!(t.contains("\"$20 (text): \""), "{t}");
        assert!(!t.contains("$21"), "{t}");
        assert!(
            t.contains(
                "Cut for Teams: the approval page has 5 more parameters and every value in full."
            ),
            "{t}"
        );
        assert!(t.contains("Statement cut for Teams"));
        assert!(t.contains("SELECT 1"), "the statement keeps room");
        // One long value alone is flagged too.
        r.params.truncate(1);
        let t = texts(&bot_approver_card(&r, None));
        assert!(
            t.contains("the approval page has every value in full"),
            "{t}"
        );
    }

    #[test]
    fn huge_statement_is_cut_to_fit() {
        let mut r = sample();
        r.sql = "SELECT \"é\\\n".repeat(100_000);
        r.tables = (0..10_000)
            .map(|i| format!("t{i}{}", "x".repeat(300)))
            .collect();
        r.pii_columns = r.tables.clone();
        r.reason = "r".repeat(100_000);
        for c in [
            webhook_card(&r),
            bot_approver_card(&r, None),
            bot_base_card(&r, None),
        ] {
            let len = serialized_len(&c);
            assert!(len <= MAX_CARD_BYTES, "{len}");
            assert!(len > MAX_CARD_BYTES - 2048, "statement space wasted: {len}");
            assert!(texts(&c).contains("Statement cut for Teams"));
            assert!(
                texts(&c).contains("SELECT \\\"é"),
                "the statement's start is shown"
            );
        }
    }

    #[test]
    fn refresh_users_are_capped() {
        let mut r = sample();
        r.approver_aad_ids = (0..100).map(|i| format!("id{i}")).collect();
        let c = bot_base_card(&r, None);
        assert_eq!(
            c["refresh"]["userIds"].as_array().unwrap().len(),
            MAX_REFRESH_USERS
        );
    }

    #[test]
    fn verdict_card_names_who_and_why() {
        let o = CardOutcome {
            request_id: "01HZX3R9K2".into(),
            state: OutcomeState::Denied,
            by: vec!["alice".into()],
            rationale: Some("not during business hours".into()),
            decided_at: time::macros::datetime!(2030-01-02 03:00:00 UTC),
        };
        let with = texts(&verdict_card(Some(&sample()), &o));
        assert!(with.contains("Denied") && with.contains("alice"));
        assert!(with.contains("not during business hours"));
        assert!(with.contains("ALTER TABLE"));
        let without = verdict_card(None, &o);
        assert!(without.get("refresh").is_none() && without.get("actions").is_none());
        assert!(texts(&without).contains("01HZX3R9K2"));
    }
}
