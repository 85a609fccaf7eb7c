//! Teams bot mode: proactive cards through the Bot Connector, in-card Approve/Deny handled at
//! the messaging endpoint.

mod activity;
pub mod auth;
pub mod connector;
pub mod endpoint;
mod notifier;
mod token;
pub mod verdict;

pub use auth::{AuthError, BotAuth};
pub use connector::PostedCard;
pub use endpoint::{bot_routes, BotState, INVOKE_ADAPTIVE_CARD_ACTION};
pub use notifier::BotNotifier;
pub use verdict::{
    ApproverDirectory, RefusalReason, RefusedAttempt, VerdictAttempt, VerdictResult, VerdictSink,
    CHANNEL_TEAMS_BOT,
};
