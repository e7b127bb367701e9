//! `--output` beyond the conformance cases: hostile archives planted in a
//! store, a restore blocked by the local tree, concurrent restores.
mod forge;
mod hostile;
mod killed;
mod local;
mod names;
mod rules;

crate::backend::on_backend!(file = File: hostile_archives_are_discarded_and_touch_nothing, a_blocked_restore_keeps_the_entry);
#[cfg(feature = "sqlite")]
crate::backend::on_backend!(sqlite = Sqlite: hostile_archives_are_discarded_and_touch_nothing, a_blocked_restore_keeps_the_entry);
#[cfg(feature = "redis")]
crate::backend::on_backend!(redis = Redis: hostile_archives_are_discarded_and_touch_nothing, a_blocked_restore_keeps_the_entry);

use hostile::hostile_archives_are_discarded_and_touch_nothing;
use local::a_blocked_restore_keeps_the_entry;
