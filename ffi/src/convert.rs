//! Conversions between fitkart-core's types and the records of the bindings: shapes only.

use std::time::SystemTime;

use fitkart_core::protocol;

use crate::{
    Achievement, CoinTransaction, DataPart, DaySteps, Leaderboard, LeaderboardEntry,
    LeaderboardPeriod, Order, OrderItem, OrderSync, Product, RejectedChange, Rejection,
    ShippingAddress, SourceSteps, StoredTokens, SyncPhase, SyncReport, SyncStatus, UserProfile,
    Wallet,
};

pub(crate) fn date(text: &str) -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

pub(crate) fn uuid(text: &str) -> Option<uuid::Uuid> {
    text.parse().ok()
}

fn time(at: chrono::DateTime<chrono::Utc>) -> SystemTime {
    at.into()
}

pub(crate) fn stored_tokens(tokens: fitkart_core::Tokens) -> StoredTokens {
    StoredTokens {
        user_id: tokens.user_id.to_string(),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
    }
}

pub(crate) fn core_tokens(tokens: StoredTokens) -> Result<fitkart_core::Tokens, &'static str> {
    Ok(fitkart_core::Tokens {
        user_id: uuid(&tokens.user_id).ok_or("the stored user id is not an id")?,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
    })
}

pub(crate) fn part(part: fitkart_core::Part) -> DataPart {
    use fitkart_core::Part as P;
    match part {
        P::Steps => DataPart::Steps,
        P::Wallet => DataPart::Wallet,
        P::Orders => DataPart::Orders,
        P::Achievements => DataPart::Achievements,
        P::Products => DataPart::Products,
        P::Leaderboard => DataPart::Leaderboard,
        P::Profile => DataPart::Profile,
        P::Settings => DataPart::Settings,
        P::Rejections => DataPart::Rejections,
        P::SyncStatus => DataPart::SyncStatus,
    }
}

pub(crate) fn status(status: &fitkart_core::SyncStatus) -> SyncStatus {
    use fitkart_core::SyncStatus as S;
    match status {
        S::Idle => SyncStatus::Idle,
        S::Syncing { phase, done, total } => SyncStatus::Syncing {
            phase: match phase {
                fitkart_core::SyncPhase::Registering => SyncPhase::Registering,
                fitkart_core::SyncPhase::Pushing => SyncPhase::Pushing,
                fitkart_core::SyncPhase::Pulling => SyncPhase::Pulling,
                fitkart_core::SyncPhase::Refreshing => SyncPhase::Refreshing,
            },
            done: *done,
            total: *total,
        },
        S::Offline => SyncStatus::Offline,
        S::Error { code } => SyncStatus::Error { code: code.clone() },
    }
}

pub(crate) fn listener_id(id: fitkart_core::ListenerId) -> u64 {
    id.value()
}

pub(crate) fn core_listener_id(id: u64) -> fitkart_core::ListenerId {
    fitkart_core::ListenerId::from_value(id)
}

pub(crate) fn profile(p: protocol::auth::UserProfile) -> UserProfile {
    UserProfile {
        id: p.id.to_string(),
        email: p.email,
        display_name: p.display_name,
        role: p.role.as_str().to_owned(),
        timezone: p.timezone,
        daily_step_goal: p.daily_step_goal,
        created_at: time(p.created_at),
    }
}

pub(crate) fn day(d: fitkart_core::DayStepsView) -> DaySteps {
    DaySteps {
        date: d.date.to_string(),
        total_steps: d.total_steps,
        verified_steps: d.verified_steps,
        pending: d.pending,
        sources: d
            .sources
            .into_iter()
            .map(|s| SourceSteps {
                source: s.source,
                steps: s.steps,
                server_steps: s.server_steps,
                verified_steps: s.verified_steps,
                status: s.status,
            })
            .collect(),
    }
}

pub(crate) fn wallet(w: fitkart_core::WalletView) -> Wallet {
    Wallet {
        available_coins: w.available_coins,
        held_coins: w.held_coins,
        pending_hold_coins: w.pending_hold_coins,
        server_available_coins: w.server_available_coins,
        server_frozen_coins: w.server_frozen_coins,
        lifetime_earned: w.lifetime_earned,
        lifetime_spent: w.lifetime_spent,
        estimated_pending_coins: w.estimated_pending_coins,
    }
}

pub(crate) fn transaction(t: protocol::steps::CoinTransaction) -> CoinTransaction {
    CoinTransaction {
        id: t.id.to_string(),
        kind: t.kind,
        available_delta: t.available_delta,
        frozen_delta: t.frozen_delta,
        available_after: t.available_after,
        frozen_after: t.frozen_after,
        reference_type: t.reference_type,
        reference_id: t.reference_id,
        description: t.description,
        created_at: time(t.created_at),
    }
}

pub(crate) fn achievement(a: fitkart_core::AchievementView) -> Achievement {
    Achievement {
        code: a.code,
        name: a.name,
        description: a.description,
        icon: a.icon,
        bonus_coins: a.bonus_coins,
        progress: a.progress,
        target: a.target,
        unlocked_at: a.unlocked_at.map(time),
    }
}

pub(crate) fn product(p: protocol::orders::Product) -> Product {
    Product {
        id: p.id.to_string(),
        sku: p.sku,
        name: p.name,
        description: p.description,
        category: p.category,
        coin_price: p.coin_price,
        stock: p.stock,
        images: p.images,
    }
}

pub(crate) fn core_address(a: ShippingAddress) -> protocol::orders::ShippingAddress {
    protocol::orders::ShippingAddress {
        name: a.name,
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        region: a.region,
        postal_code: a.postal_code,
        country: a.country,
        phone: a.phone,
    }
}

fn address(a: protocol::orders::ShippingAddress) -> ShippingAddress {
    ShippingAddress {
        name: a.name,
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        region: a.region,
        postal_code: a.postal_code,
        country: a.country,
        phone: a.phone,
    }
}

pub(crate) fn order(o: fitkart_core::OrderView) -> Order {
    Order {
        client_order_id: o.client_order_id.to_string(),
        order_id: o.order_id.map(|id| id.to_string()),
        order_code: o.order_code,
        status: o.status,
        sync: match o.sync {
            fitkart_core::OrderSync::Synced => OrderSync::Synced,
            fitkart_core::OrderSync::PendingPlacement => OrderSync::PendingPlacement,
            fitkart_core::OrderSync::PendingCancellation => OrderSync::PendingCancellation,
        },
        total_coins: o.total_coins,
        items: o
            .items
            .into_iter()
            .map(|i| OrderItem {
                product_id: i.product_id.to_string(),
                product_name: i.product_name,
                quantity: i.quantity,
                unit_coin_price: i.unit_coin_price,
            })
            .collect(),
        shipping_address: address(o.shipping_address),
        tracking_number: o.tracking_number,
        created_at: time(o.created_at),
    }
}

pub(crate) fn core_period(p: LeaderboardPeriod) -> protocol::leaderboard::LeaderboardPeriod {
    use protocol::leaderboard::LeaderboardPeriod as P;
    match p {
        LeaderboardPeriod::Weekly => P::Weekly,
        LeaderboardPeriod::Monthly => P::Monthly,
        LeaderboardPeriod::AllTime => P::AllTime,
    }
}

pub(crate) fn leaderboard(view: fitkart_core::LeaderboardView) -> Leaderboard {
    use protocol::leaderboard::LeaderboardPeriod as P;
    let board = view.board;
    Leaderboard {
        period: match board.period {
            P::Weekly => LeaderboardPeriod::Weekly,
            P::Monthly => LeaderboardPeriod::Monthly,
            P::AllTime => LeaderboardPeriod::AllTime,
        },
        period_start: board.period_start.to_string(),
        computed_at: board.computed_at.map(time),
        fetched_at: time(view.fetched_at),
        entries: board
            .entries
            .into_iter()
            .map(|e| LeaderboardEntry {
                rank: e.rank,
                display_name: e.display_name,
                steps: e.steps,
                is_me: e.is_me,
            })
            .collect(),
        my_rank: board.me.map(|m| m.rank),
        my_steps: board.me.map(|m| m.steps),
    }
}

pub(crate) fn rejection(r: fitkart_core::Rejection) -> Rejection {
    Rejection {
        mutation_id: r.mutation_id.to_string(),
        kind: r.kind,
        code: r.code,
        message: r.message,
        client_order_id: r.client_order_id.map(|id| id.to_string()),
        rejected_at: time(r.rejected_at),
    }
}

pub(crate) fn report(r: fitkart_core::SyncReport) -> SyncReport {
    SyncReport {
        pushed: r.pushed,
        applied: r.applied,
        duplicates: r.duplicates,
        rejected: r
            .rejected
            .into_iter()
            .map(|(kind, code)| RejectedChange { kind, code })
            .collect(),
        pulled_pages: r.pulled.pages,
        pulled_rows: r.pulled.rows.into_iter().collect(),
        refetched_snapshot: r.refetched_snapshot,
        complete: r.complete,
    }
}
