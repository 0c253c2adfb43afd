//! dropshot logs through slog. Its stock terminal logger filters levels
//! *behind* an async channel, so every request's two info records were
//! formatted and shipped to a logger thread only to be dropped there. This
//! drain filters first and forwards warnings and errors to `tracing`, so
//! they land in our one log stream.

use slog::{Drain, Level, Never, OwnedKVList, Record};

/// Forwards dropshot's warnings and errors to `tracing`; drops the rest
/// without formatting them.
pub struct TracingDrain;

impl Drain for TracingDrain {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record<'_>, _: &OwnedKVList) -> Result<(), Never> {
        match record.level() {
            Level::Critical | Level::Error => {
                tracing::error!(target: "dropshot", "{}", record.msg())
            }
            Level::Warning => {
                tracing::warn!(target: "dropshot", "{}", record.msg())
            }
            _ => {}
        }
        Ok(())
    }

    fn is_enabled(&self, level: Level) -> bool {
        level.is_at_least(Level::Warning)
    }
}

/// The root logger handed to dropshot.
pub fn logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}
