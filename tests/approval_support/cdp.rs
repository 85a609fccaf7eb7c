//! A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`: Chromium reads
//! commands from fd 3 and writes replies and events to fd 4, NUL-separated JSON. No
//! chromedriver, no websocket, no extra crate.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Where Chromium is: `$CHROMIUM`, else Debian's `/usr/bin/chromium`. Panics with the way to
/// install it when missing: the page test must fail, not skip, without a browser.
pub fn chromium_path() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !path.exists() {
        panic!(
            "Chromium not found at {}: install it with `apt-get update && apt-get install -y chromium` \
             (or point $CHROMIUM at a Chromium binary)",
            path.display()
        );
    }
    path
}

pub struct Browser {
    child: Child,
    to_browser: File,
    from_browser: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
    /// Exceptions thrown by the page, reported when a wait fails.
    pub page_errors: Vec<String>,
    _profile: tempfile::TempDir,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid 2-element array; O_CLOEXEC keeps our ends out of the child.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    /// Starts headless Chromium with a fresh profile and attaches to a new blank page.
    pub fn launch() -> Browser {
        let chromium = chromium_path();
        let profile = tempfile::tempdir().expect("profile dir");
        let (child_reads, we_write) = pipe();
        let (we_read, child_writes) = pipe();
        let (r, w) = (child_reads.as_raw_fd(), child_writes.as_raw_fd());
        let mut cmd = Command::new(&chromium);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec. The pipe
        // ends are first moved above fd 10 so placing them on 3 and 4 cannot clobber each
        // other; dup2 clears close-on-exec on the copies.
        unsafe {
            cmd.pre_exec(move || {
                let r2 = libc::fcntl(r, libc::F_DUPFD_CLOEXEC, 10);
                let w2 = libc::fcntl(w, libc::F_DUPFD_CLOEXEC, 10);
                if r2 < 0 || w2 < 0 || libc::dup2(r2, 3) < 0 || libc::dup2(w2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
        drop(child_reads);
        drop(child_writes);

        let (tx, rx) = mpsc::channel();
        let reader = File::from(we_read);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            loop {
                let mut buf = Vec::new();
                match reader.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        buf.pop();
                        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let mut browser = Browser {
            child,
            to_browser: File::from(we_write),
            from_browser: rx,
            next_id: 1,
            session: None,
            page_errors: Vec::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = browser.call(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        browser.session = Some(
            attached["sessionId"]
                .as_str()
                .expect("sessionId")
                .to_owned(),
        );
        browser.call("Page.enable", json!({}));
        browser.call("Runtime.enable", json!({}));
        browser
    }

    /// Sends a command (to the attached page once there is one) and waits for its reply.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .expect("write to Chromium");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from_browser
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no reply from Chromium to {method}"));
            if v["method"] == "Runtime.exceptionThrown" {
                self.page_errors
                    .push(v["params"]["exceptionDetails"].to_string());
            }
            if v["id"] == json!(id) {
                if let Some(err) = v.get("error") {
                    panic!("{method} failed: {err}");
                }
                return v["result"].clone();
            }
        }
    }

    pub fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_for("document.readyState === 'complete'", "page load");
    }

    /// Evaluates an expression in the page and returns its value (promises are awaited).
    pub fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
        );
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("page threw evaluating `{expression}`: {ex}");
        }
        r["result"]["value"].clone()
    }

    /// Waits (in the page, up to 15 s) until `condition` is true; fails with `what`.
    pub fn wait_for(&mut self, condition: &str, what: &str) {
        let expr = format!(
            "new Promise((resolve) => {{ const end = Date.now() + 15000; \
               const tick = () => {{ let ok = false; try {{ ok = !!({condition}); }} catch (e) {{}} \
                 if (ok) resolve(true); else if (Date.now() > end) resolve(false); \
                 else setTimeout(tick, 25); }}; tick(); }})"
        );
        if self.eval(&expr) != json!(true) {
            let body = self.eval("document.body ? document.body.innerText : ''");
            panic!(
                "timed out waiting for {what} ({condition}); page errors: {:?}; page text: {body}",
                self.page_errors
            );
        }
    }

    /// Focuses an element and types text into it through the input pipeline.
    pub fn type_into(&mut self, selector: &str, text: &str) {
        self.eval(&format!(
            "document.querySelector({}).focus()",
            serde_json::to_string(selector).unwrap()
        ));
        self.call("Input.insertText", json!({ "text": text }));
    }

    pub fn click(&mut self, selector: &str) {
        self.eval(&format!(
            "document.querySelector({}).click()",
            serde_json::to_string(selector).unwrap()
        ));
    }

    pub fn text(&mut self, selector: &str) -> String {
        self.eval(&format!(
            "(document.querySelector({}) || {{}}).textContent || ''",
            serde_json::to_string(selector).unwrap()
        ))
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
