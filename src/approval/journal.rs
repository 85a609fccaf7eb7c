//! A tiny on-disk journal of open requests, so that a crash (kill -9) still leaves a trail:
//! at the next start every request that was pending is recorded as abandoned, and every unused
//! grant as dropped.
//!
//! One small JSON file per open request, written when it opens or changes and removed when it
//! is fully done. Holds are rare (a human is in the loop), so a file per hold costs nothing
//! that matters, and the format needs no coordination with the audit store.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{Flock, FlockArg};

use serde::{Deserialize, Serialize};

use super::ApprovalError;

/// What is remembered of an open request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JournalRecord {
    pub request_id: String,
    pub decision_id: String,
    pub requester: String,
    pub status: JournalStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JournalStatus {
    /// Waiting for a verdict.
    Pending,
    /// Approved late; an unused grant exists.
    Granted,
}

#[derive(Clone)]
pub(crate) struct Journal {
    dir: PathBuf,
    /// Held for the journal's life. A second gateway on the same directory would read this
    /// one's open requests as left over from a crash, record them abandoned and delete their
    /// files (even half-written ones), so it is refused at start instead.
    _lock: Arc<Flock<fs::File>>,
}

/// The lock file inside the journal directory.
const LOCK_FILE: &str = "LOCK";

impl Journal {
    pub fn open(dir: &Path) -> Result<Self, ApprovalError> {
        let err = |message: String| ApprovalError::Journal {
            path: dir.to_owned(),
            message,
        };
        fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| err(e.to_string()))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
            if e == nix::errno::Errno::EWOULDBLOCK {
                err("in use by another running airlock; every gateway needs a state_dir of its own ([approval] state_dir)".into())
            } else {
                err(format!("cannot lock it: {e}"))
            }
        })?;
        Ok(Journal {
            dir: dir.to_owned(),
            _lock: Arc::new(lock),
        })
    }

    fn path(&self, request_id: &str) -> PathBuf {
        self.dir.join(format!("{request_id}.json"))
    }

    /// Writes (or replaces) the record, durably: temp file, fsync, rename.
    pub fn put(&self, record: &JournalRecord) -> Result<(), ApprovalError> {
        let err = |e: std::io::Error| ApprovalError::Journal {
            path: self.dir.clone(),
            message: e.to_string(),
        };
        let tmp = self.dir.join(format!("{}.tmp", record.request_id));
        let body = serde_json::to_vec(record).map_err(|e| ApprovalError::Journal {
            path: tmp.clone(),
            message: e.to_string(),
        })?;
        let mut f = fs::File::create(&tmp).map_err(err)?;
        f.write_all(&body).map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::rename(&tmp, self.path(&record.request_id)).map_err(err)?;
        Ok(())
    }

    /// Forgets a request. A missing file is fine (already removed).
    pub fn remove(&self, request_id: &str) {
        match fs::remove_file(self.path(request_id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(request_id, error = %e, "cannot remove approval journal file"),
        }
    }

    /// Everything left by a previous run (the caller removes each once it is recorded).
    pub fn drain(&self) -> Result<Vec<JournalRecord>, ApprovalError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| ApprovalError::Journal {
            path: self.dir.clone(),
            message: e.to_string(),
        })?;
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") => {}
                Some("tmp") => {
                    let _ = fs::remove_file(&path);
                    continue;
                }
                _ => continue,
            }
            match fs::read(&path).map_err(|e| e.to_string()).and_then(|b| {
                serde_json::from_slice::<JournalRecord>(&b).map_err(|e| e.to_string())
            }) {
                Ok(r) => records.push(r),
                Err(e) => {
                    // Still a request that was open: report it under its file name so the
                    // restart is recorded rather than silently lost.
                    tracing::warn!(path = %path.display(), error = %e, "unreadable approval journal file");
                    let stem = path
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or("unknown");
                    records.push(JournalRecord {
                        request_id: stem.to_owned(),
                        decision_id: String::new(),
                        requester: String::new(),
                        status: JournalStatus::Pending,
                    });
                }
            }
        }
        records.sort_by(|a, b| a.request_id.cmp(&b.request_id));
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> JournalRecord {
        JournalRecord {
            request_id: id.into(),
            decision_id: format!("d-{id}"),
            requester: "agent".into(),
            status: JournalStatus::Pending,
        }
    }

    #[test]
    fn a_second_gateway_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Journal::open(dir.path()).unwrap();
        first.put(&record("r1")).unwrap();
        let err = Journal::open(dir.path())
            .err()
            .expect("second open refused");
        assert!(
            err.to_string()
                .contains("in use by another running airlock"),
            "{err}"
        );
        // The refused opener touched nothing: the open request is still journaled.
        assert_eq!(first.drain().unwrap(), vec![record("r1")]);
        drop(first);
        let again = Journal::open(dir.path()).expect("free once the first is gone");
        assert_eq!(again.drain().unwrap(), vec![record("r1")]);
    }

    #[test]
    fn drain_skips_the_lock_and_removes_half_written_files() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path()).unwrap();
        j.put(&record("r2")).unwrap();
        fs::write(dir.path().join("r3.tmp"), b"{\"request_").unwrap();
        assert_eq!(j.drain().unwrap(), vec![record("r2")]);
        assert!(!dir.path().join("r3.tmp").exists());
        assert!(dir.path().join(LOCK_FILE).exists());
    }
}
