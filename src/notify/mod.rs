//! See the crate docs for where this sits in the flow.

use serde::{Deserialize, Serialize};

/// `[notify]` section: where held requests are announced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {}
