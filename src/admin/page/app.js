// The airlock approval page. No framework, no network beyond this gateway's own API.
// Everything that comes from a request (SQL, names, parameters) is inserted as text, never as
// HTML: the statement was written by an agent and must be treated as hostile.
"use strict";

(function () {
  const TOKEN_KEY = "airlock-token";
  const $ = (id) => document.getElementById(id);

  // ---- hidden characters -------------------------------------------------------------------
  // Control characters, bidi controls and invisible formatting could make the page show
  // something other than what runs (reordered or hidden text), so they are shown as escapes
  // like `\x1b` or `\u{202e}`, as the CLI and the Teams cards do (src/untrusted.rs). A CR
  // before LF is just a line end; variation selectors are kept after non-ASCII (emoji).
  const HIDDEN = new RegExp([
    /\r/.source,
    /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e]/.source,
    /[\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufeff\uffa0\ufff0-\ufffb]/.source,
    /[\u{1bca0}-\u{1bca3}\u{1d173}-\u{1d17a}\u{e0000}-\u{e00ff}\u{e01f0}-\u{e0fff}]/u.source,
    /(?<![^\x00-\x7f])[\u180b-\u180d\u180f\ufe00-\ufe0f\u{e0100}-\u{e01ef}]/u.source,
  ].join("|"), "gu");

  function reveal(value) {
    return (value == null ? "" : String(value)).replace(/\r\n/g, "\n").replace(HIDDEN, (c) => {
      const n = c.codePointAt(0);
      if (c === "\r") return "\\r";
      return n < 0x100 ? "\\x" + n.toString(16).padStart(2, "0") : "\\u{" + n.toString(16) + "}";
    });
  }

  // ---- SQL highlighting ------------------------------------------------------------------
  const KEYWORDS = new Set((
    "select from where and or not insert into values update set delete create alter drop table " +
    "view index schema database role user grant revoke to on as join left right inner outer full " +
    "cross using group by order having limit offset union all distinct case when then else end " +
    "is null in exists between like ilike returning with recursive truncate copy begin commit " +
    "rollback savepoint release primary key foreign references constraint default unique check " +
    "column add rename cascade restrict if function procedure language returns do call execute " +
    "prepare deallocate declare cursor for fetch move close vacuum analyze explain lock listen " +
    "notify password superuser login nologin owner privileges sequence trigger extension policy " +
    "security definer invoker system reset show true false asc desc nulls first last only"
  ).split(" "));

  // Where a comment, string or quoted name ends is decided as PostgreSQL's lexer decides it
  // (standard_conforming_strings on, its default, which airlock does not let a session
  // change): a backslash escapes only in E'…' strings, `--` ends at CR or LF, block comments
  // nest. A highlighter that ends a token elsewhere than the server paints code as a string or
  // a comment, which is how a statement would hide from the approver reading it.
  const WORD = /[A-Za-z_\u0080-\uffff][A-Za-z_0-9$\u0080-\uffff]*/y;
  const NUMBER = /\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![A-Za-z_0-9])/y;
  const DOLLAR_TAG = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z_0-9\u0080-\uffff]*)?\$/y;
  const PARAM = /\$\d+/y;

  // The end (exclusive) of the token starting at `i`, and its class; null for one plain char.
  function scan(sql, i) {
    const c = sql[i];
    const next = sql[i + 1];
    if (c === "-" && next === "-") {
      let j = i + 2;
      while (j < sql.length && sql[j] !== "\n" && sql[j] !== "\r") j += 1;
      return { end: j, cls: "cmt" };
    }
    if (c === "/" && next === "*") {
      let depth = 1;
      let j = i + 2;
      while (j < sql.length && depth > 0) {
        if (sql[j] === "/" && sql[j + 1] === "*") { depth += 1; j += 2; }
        else if (sql[j] === "*" && sql[j + 1] === "/") { depth -= 1; j += 2; }
        else j += 1;
      }
      return { end: j, cls: "cmt" };
    }
    const escapes = (c === "e" || c === "E") && next === "'";
    if (c === "'" || escapes) {
      let j = escapes ? i + 2 : i + 1;
      let backslash = false;
      while (j < sql.length) {
        if (sql[j] === "\\") {
          backslash = true;
          j += escapes ? 2 : 1;
        } else if (sql[j] === "'") {
          if (sql[j + 1] === "'") j += 2;
          else { j += 1; break; }
        } else j += 1;
      }
      return { end: Math.min(j, sql.length), cls: "str", ambiguous: backslash && !escapes };
    }
    if (c === "$") {
      DOLLAR_TAG.lastIndex = i;
      const tag = DOLLAR_TAG.exec(sql);
      if (tag) {
        const close = sql.indexOf(tag[0], i + tag[0].length);
        return { end: close < 0 ? sql.length : close + tag[0].length, cls: "str" };
      }
      PARAM.lastIndex = i;
      const param = PARAM.exec(sql);
      if (param) return { end: i + param[0].length, cls: "param" };
      return null;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < sql.length) {
        if (sql[j] === '"') {
          if (sql[j + 1] === '"') j += 2;
          else { j += 1; break; }
        } else j += 1;
      }
      return { end: Math.min(j, sql.length), cls: "ident" };
    }
    WORD.lastIndex = i;
    const word = WORD.exec(sql);
    if (word) {
      const kw = KEYWORDS.has(word[0].toLowerCase());
      return { end: i + word[0].length, cls: kw ? "kw" : "" };
    }
    NUMBER.lastIndex = i;
    const num = NUMBER.exec(sql);
    if (num) return { end: i + num[0].length, cls: "num" };
    return null;
  }

  // Paints `sql` into `target`, each token's text shown with its hidden characters revealed.
  // Returns whether a plain '…' string holds a backslash: with standard_conforming_strings
  // off on the server (a DBA can configure that), such a string ends at the backslash-quote,
  // and what the colours show as a string would run.
  function highlight(target, sql) {
    sql = (sql == null ? "" : String(sql)).replace(/\r\n/g, "\n");
    target.textContent = "";
    let pos = 0;
    let plain = "";
    let ambiguous = false;
    const flush = () => {
      if (plain) { target.appendChild(document.createTextNode(reveal(plain))); plain = ""; }
    };
    const span = (cls, text) => {
      flush();
      const s = document.createElement("span");
      s.className = cls;
      s.textContent = reveal(text);
      target.appendChild(s);
    };
    while (pos < sql.length) {
      const t = scan(sql, pos);
      if (!t) { plain += sql[pos]; pos += 1; continue; }
      const text = sql.slice(pos, t.end);
      if (t.ambiguous) ambiguous = true;
      if (t.cls) span(t.ambiguous ? t.cls + " ambiguous" : t.cls, text);
      else plain += text;
      pos = t.end;
    }
    flush();
    return ambiguous;
  }

  // ---- API ---------------------------------------------------------------------------------
  function token() { return sessionStorage.getItem(TOKEN_KEY); }

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    const t = token();
    if (t) headers["Authorization"] = "Bearer " + t;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store",
    });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    return { status: res.status, ok: res.ok, data };
  }

  function flash(text) {
    const f = $("flash");
    f.textContent = text;
    f.hidden = !text;
  }

  function text(id, value) { $(id).textContent = reveal(value); }

  function listOr(items, none) { return items && items.length ? items.join(", ") : none; }

  function formatLeft(secs) {
    if (secs <= 0) return "0 s";
    const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + s + " s";
  }

  // ---- sign in -----------------------------------------------------------------------------
  function showSignedIn(name) {
    $("who").textContent = "signed in as " + name;
    $("who").hidden = false;
    $("signout").hidden = false;
  }

  async function checkToken() {
    if (!token()) return null;
    const r = await api("GET", "/api/whoami");
    if (r.ok && r.data) { showSignedIn(r.data.name); return r.data.name; }
    sessionStorage.removeItem(TOKEN_KEY);
    return null;
  }

  function wireSignin(onDone) {
    $("signin-section").hidden = false;
    $("signin").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const value = $("token").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN_KEY, value);
      const name = await checkToken();
      if (!name) { flash("That token is not valid here."); return; }
      $("token").value = "";
      flash("");
      $("signin-section").hidden = true;
      onDone(name);
    });
  }

  // ---- one request -------------------------------------------------------------------------
  const route = (() => {
    const m = location.pathname.match(/^\/approvals\/([^/]+)\/?$/);
    return m ? { kind: "request", id: decodeURIComponent(m[1]) } : { kind: "list" };
  })();
  const link = new URLSearchParams(location.search);

  let countdownTimer = null;
  let refreshTimer = null;
  let me = null;

  function startCountdown(view) {
    clearInterval(countdownTimer);
    const started = Date.now();
    const render = () => {
      const gone = Math.floor((Date.now() - started) / 1000);
      if (view.state !== "pending") { text("countdown", ""); return; }
      const hold = view.hold_remaining_secs - gone;
      const open = view.approvable_remaining_secs - gone;
      if (view.client_waiting && hold > 0) {
        text("countdown", "The agent is waiting: " + formatLeft(hold) + " left before its hold times out.");
      } else if (open > 0) {
        text("countdown", "The agent stopped waiting. Still approvable for " + formatLeft(open) +
          "; an approval then lets the same statement run once when re-run.");
      } else {
        text("countdown", "Expired.");
      }
    };
    render();
    countdownTimer = setInterval(render, 1000);
  }

  function renderRequest(view) {
    text("req-id", view.id);
    const badge = $("req-state");
    badge.textContent = view.state;
    badge.className = "badge " + view.state;
    $("sql-warning").hidden = !highlight($("sql"), view.sql);
    text("f-requester", view.requester);
    text("f-app", view.application_name || "(none)");
    text("f-db", view.database);
    text("f-client", view.client_addr);
    text("f-rule", view.rule_id);
    text("f-rule-source", view.rule_source ? "(" + view.rule_source + ")" : "");
    text("f-reason", view.reason);
    text("f-kind", listOr(view.facts.kinds, "unknown") +
      (view.facts.labels.length ? " — " + view.facts.labels.join("; ") : ""));
    text("f-tables", listOr(view.facts.tables, "none"));
    text("f-pii", listOr(view.facts.pii_columns, "none"));
    const votes = view.approvals.map((v) => v.approver + " (" + v.channel + ")");
    let approvals = votes.length + " of " + view.quorum + (votes.length ? ": " + votes.join(", ") : "");
    if (view.denial) approvals += " — denied by " + view.denial.approver + ": " + (view.denial.rationale || "");
    if (view.closed_reason && !view.denial) approvals += " — closed: " + view.closed_reason;
    text("f-approvals", approvals);
    text("f-approvers", listOr(view.approvers, "none configured"));

    const body = $("params").querySelector("tbody");
    body.textContent = "";
    view.params.forEach((p, i) => {
      const tr = document.createElement("tr");
      const n = document.createElement("td");
      n.textContent = "$" + (i + 1);
      const t = document.createElement("td");
      const type = (view.param_types || [])[i];
      t.textContent = type ? reveal(type) : "—";
      const v = document.createElement("td");
      if (p === null) { v.textContent = "NULL"; v.className = "null"; } else { v.textContent = reveal(p); }
      tr.append(n, t, v);
      body.appendChild(tr);
    });
    $("params-block").hidden = view.params.length === 0;

    const canDecide = view.state === "pending" && !!me;
    $("verdict").hidden = !canDecide;
    $("readonly-note").hidden = !!me || view.state !== "pending";
    startCountdown(view);
    $("request-section").hidden = false;
  }

  async function loadRequest() {
    let path = "/api/approvals/" + encodeURIComponent(route.id);
    if (!token() && link.get("sig") && link.get("exp")) {
      path += "?exp=" + encodeURIComponent(link.get("exp")) + "&sig=" + encodeURIComponent(link.get("sig"));
    }
    const r = await api("GET", path);
    if (!r.ok) {
      flash((r.data && r.data.message) || ("Error " + r.status));
      $("request-section").hidden = true;
      return null;
    }
    flash("");
    renderRequest(r.data);
    return r.data;
  }

  function showResult(message, isError) {
    const el = $("result");
    el.textContent = message;
    el.className = "result" + (isError ? " error" : "");
    el.hidden = false;
  }

  async function sendVerdict(kind) {
    const rationale = $("rationale").value.trim();
    if (kind === "deny" && !rationale) { showResult("A rationale is required to deny.", true); return; }
    $("approve").disabled = true;
    $("deny").disabled = true;
    const r = await api("POST", "/api/approvals/" + encodeURIComponent(route.id) + "/" + kind,
      { rationale: rationale || null, channel: "web" });
    $("approve").disabled = false;
    $("deny").disabled = false;
    if (r.ok) {
      if (r.data.result === "recorded") {
        showResult("Approval recorded; " + r.data.remaining + " more approval(s) needed.", false);
      } else if (kind === "approve") {
        showResult(r.data.delivery === "grant_issued"
          ? "Approved. The agent had stopped waiting: the same statement will run once when it is re-run."
          : "Approved. The statement is running now.", false);
      } else {
        showResult("Denied. The agent has been told why.", false);
      }
      $("rationale").value = "";
      if (r.data.request) renderRequest(r.data.request);
    } else {
      showResult((r.data && r.data.message) || ("Error " + r.status), true);
      if (r.status === 401) { sessionStorage.removeItem(TOKEN_KEY); location.reload(); }
    }
  }

  // ---- list --------------------------------------------------------------------------------
  async function loadList() {
    const all = $("show-all").checked;
    const r = await api("GET", "/api/approvals?state=" + (all ? "all" : "pending"));
    if (!r.ok) { flash((r.data && r.data.message) || ("Error " + r.status)); return; }
    const body = $("list").querySelector("tbody");
    body.textContent = "";
    for (const v of r.data.requests) {
      const tr = document.createElement("tr");
      const cell = (value, cls) => {
        const td = document.createElement("td");
        if (cls) td.className = cls;
        td.textContent = reveal(value);
        tr.appendChild(td);
        return td;
      };
      const idCell = cell("");
      const a = document.createElement("a");
      a.href = "/approvals/" + encodeURIComponent(v.id);
      a.textContent = v.id;
      idCell.appendChild(a);
      cell(v.state);
      cell(v.requester);
      cell(v.rule_id);
      cell(listOr(v.facts.kinds, "unknown"));
      cell(v.sql, "sqlcell");
      cell(v.state === "pending" ? formatLeft(v.approvable_remaining_secs) : "");
      body.appendChild(tr);
    }
    $("list-empty").hidden = r.data.requests.length !== 0;
    $("list-section").hidden = false;
  }

  // ---- start -------------------------------------------------------------------------------
  async function start() {
    $("signout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      location.reload();
    });
    me = await checkToken();
    if (route.kind === "request") {
      $("approve").addEventListener("click", () => sendVerdict("approve"));
      $("deny").addEventListener("click", () => sendVerdict("deny"));
      if (!me) {
        wireSignin(async (name) => { me = name; await loadRequest(); });
        if (link.get("sig")) await loadRequest();
      } else {
        await loadRequest();
      }
      refreshTimer = setInterval(async () => {
        if ($("request-section").hidden || !$("rationale").matches(":focus")) {
          if (me || link.get("sig")) await loadRequest();
        }
      }, 5000);
    } else {
      $("show-all").addEventListener("change", loadList);
      if (!me) {
        wireSignin(async (name) => { me = name; await loadList(); });
      } else {
        await loadList();
      }
    }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
