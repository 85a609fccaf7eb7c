//! The parts of an incoming Bot Framework activity the messaging endpoint reads.

use serde::Deserialize;
use serde_json::Value;

/// An activity as Teams sends it. Unknown fields are ignored (Teams adds many).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    pub service_url: String,
    pub channel_id: String,
    #[serde(default)]
    pub from: Option<ChannelAccount>,
    #[serde(default)]
    pub conversation: Option<ConversationAccount>,
    /// For a card action: the id of the message holding the card.
    #[serde(default)]
    pub reply_to_id: Option<String>,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub channel_data: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelAccount {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Entra object id of the person; the only identity airlock trusts.
    #[serde(default)]
    pub aad_object_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationAccount {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// Why an activity's tenant could not be established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantError {
    Missing,
    Conflicting,
}

impl Activity {
    /// The tenant the activity comes from: `conversation.tenantId` and
    /// `channelData.tenant.id`, which must agree when both are present.
    pub fn tenant_id(&self) -> Result<&str, TenantError> {
        let from_conversation = self
            .conversation
            .as_ref()
            .and_then(|c| c.tenant_id.as_deref())
            .filter(|t| !t.is_empty());
        let from_channel_data = self
            .channel_data
            .as_ref()
            .and_then(|d| d.pointer("/tenant/id"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty());
        match (from_conversation, from_channel_data) {
            (Some(a), Some(b)) if a != b => Err(TenantError::Conflicting),
            (Some(a), _) | (None, Some(a)) => Ok(a),
            (None, None) => Err(TenantError::Missing),
        }
    }
}

/// `value` of an `adaptiveCard/action` invoke.
#[derive(Debug, Clone, Deserialize)]
pub struct ActionInvoke {
    pub action: InvokeAction,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InvokeAction {
    #[serde(rename = "type")]
    pub kind: String,
    pub verb: String,
    /// The action's `data` with the card's inputs merged in.
    #[serde(default)]
    pub data: Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn activity(v: Value) -> Activity {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tenant_from_either_place_and_conflicts_refused() {
        let base = json!({"type": "invoke", "serviceUrl": "https://s/", "channelId": "msteams"});
        let mut a = base.clone();
        a["conversation"] = json!({"id": "c", "tenantId": "t1"});
        assert_eq!(activity(a.clone()).tenant_id(), Ok("t1"));
        a["channelData"] = json!({"tenant": {"id": "t2"}});
        assert_eq!(activity(a).tenant_id(), Err(TenantError::Conflicting));
        let mut b = base.clone();
        b["channelData"] = json!({"tenant": {"id": "t3"}});
        assert_eq!(activity(b).tenant_id(), Ok("t3"));
        assert_eq!(activity(base).tenant_id(), Err(TenantError::Missing));
    }
}
