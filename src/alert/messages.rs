//! Messages the alert actor accepts. Senders hold only these types (and a `Recipient`).
//!
//! Both are sent with `do_send`: the handler never waits on I/O (it reserves room in an
//! alerter's bounded queue and hands the Redis expiration check to a task), so the mailbox
//! drains as fast as messages arrive.

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::model::Anomaly;

/// An anomaly found by the Analyzer: logged, sent to syslog when `all_anomalies`, and alerted
/// through every alerter whose rule matches and whose `last_alert.<alerter>.<metric>` key is
/// absent.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AlertAnomaly(pub Anomaly);

/// An anomaly from a stage that routes its own alerts (Boundary): sent through exactly the
/// listed alerters, each at most once per `expiration_secs` per `key` (`SET key … EX … NX`),
/// whatever the `[[alerts]]` rules say.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AlertRouted {
    /// The anomaly (its `app` names the stage in the alert's wording).
    pub anomaly: Anomaly,
    /// Where it goes.
    pub routes: Vec<AlertRoute>,
}

/// One alerter of an [`AlertRouted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRoute {
    /// `smtp`, `slack`, `webhook`, `syslog`, `alertmanager` or `pagerduty` (an alerter that is
    /// not configured is skipped).
    pub alerter: String,
    /// The Redis key whose presence suppresses the alert (the sender's own naming).
    pub key: String,
    /// TTL of `key`.
    pub expiration_secs: u64,
}

/// Shutdown (sent by `app` only): deliver what is queued within `budget`, then write what is
/// left (the alert in flight included) to the pending file, sent at the next start. Replies
/// with what happened. New alerts arriving afterwards are written to the file too.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "ShutdownReport")]
pub struct ShutdownAlerts {
    /// How long deliveries may continue.
    pub budget: std::time::Duration,
}

/// Reply to [`ShutdownAlerts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Alerts written to the pending file for the next start.
    pub persisted: usize,
    /// Alerts that could be neither delivered nor written (the file failed; logged).
    pub lost: usize,
}

/// Whether a self-monitoring condition started or cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SystemStatus {
    /// The condition holds (sent again every expiry while it lasts).
    Firing,
    /// The condition cleared after an alert was sent.
    Recovered,
}

/// A Thunder event (the daemon's own health): delivered to `[thunder] alerters` without any
/// `last_alert` key; Thunder spaces them out itself.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "()")]
pub struct SystemAlert {
    /// The check: `no_data`, `analyzer_overrun`, `redis`, `database`, `spool`.
    pub check: String,
    /// Started or cleared.
    pub status: SystemStatus,
    /// One line for subjects and chat.
    pub summary: String,
    /// Host name of this instance.
    pub host: String,
    /// Epoch seconds of the observation.
    pub timestamp: i64,
}
