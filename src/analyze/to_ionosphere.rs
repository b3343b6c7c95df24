//! The Analyzer's side of the Ionosphere hand-off (spec §3.3, §3.9), kept apart from the run
//! loop: [`IonosphereHandoff::hand_off`] after each run. The hand-off itself lives with the
//! receiver's messages (`ionosphere::messages`), shared with Mirage's; see it for the
//! fallbacks (full waiting list, the 300-s waterfall), each alerting rather than silencing.

pub use crate::ionosphere::messages::IonosphereHandoff;
