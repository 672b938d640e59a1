//! The admin API's domain: user detail, analytics, settings with per-key validation, the
//! audit log query, and wallet adjustments. Every mutation writes exactly one `admin_logs`
//! row in the same transaction as the change.
//!
//! - [`users`]: a user's detail, disabling and enabling accounts;
//! - [`analytics`]: steps, coins and orders per day;
//! - [`settings`]: reading and changing settings, each change validated against its key's rule;
//! - [`logs`]: querying the audit log; [`audit`]: writing it;
//! - [`wallet`]: adjusting a wallet through the ledger.

pub mod analytics;
pub mod audit;
pub mod logs;
pub mod settings;
pub mod users;
pub mod wallet;

pub use analytics::{Analytics, AnalyticsDay, analytics};
pub use logs::{AuditLogEntry, LogFilter, logs};
pub use settings::{Setting, check_setting, put_setting, settings};
pub use users::{
    AccountStatus, AccountStatusChange, UserDetail, UserStepStats, set_account_disabled,
    user_detail,
};
pub use wallet::{WalletAdjustment, adjust_wallet};

use crate::error::DomainError;

/// The trimmed reason an admin action requires: 1 to 500 characters, else 422 naming
/// `reason`.
fn required_reason(reason: &str) -> Result<&str, DomainError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(DomainError::validation(
            "reason",
            "a reason of 1 to 500 characters is required",
        ));
    }
    Ok(reason)
}
