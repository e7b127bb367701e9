//! The conformance suite: one list of cases, run against every backend and
//! stack (`backend::on_every_backend!`).
mod counts;
mod faults;
mod flight;
mod fresh;
mod manage;
mod miss;
mod outputs;
mod parse;
pub mod signed;
mod stale_error;

use counts::*;
use faults::*;
use flight::*;
use fresh::*;
use manage::*;
use miss::*;
use outputs::*;
use parse::*;
use signed::*;
use stale_error::*;

/// For a backend's own tests that look at what a takeover leaves behind.
pub(crate) use flight::killed_owner_frees_waiters_at_once;

crate::backend::on_every_backend!(
    miss_then_hit_replays_bytes_and_code,
    every_byte_value_round_trips,
    order_is_kept_when_streams_share_a_file,
    failures_are_not_cached_by_default,
    cache_exit_codes_and_cache_failures,
    no_empty_skips_empty_stdout,
    entry_size_limit_passes_through_unstored,
    stdin_is_keyed_and_fed,
    stale_entries_are_recomputed,
    max_age_is_a_stricter_bound,
    next_time_serves_stale_and_refreshes_detached,
    overwrite_recomputes_a_fresh_entry,
    skip_cache_and_disable_read_and_write_nothing,
    concurrent_callers_run_the_command_once,
    killed_owner_frees_waiters_at_once,
    wait_for_calc_timeout_gives_up_and_runs,
    signals_reach_the_command,
    command_killed_by_signal_exits_128_plus_n,
    corrupt_entry_is_discarded_and_recomputed,
    truncated_entry_is_discarded_and_recomputed,
    strict_turns_a_corrupt_entry_into_exit_125,
    closed_stdout_on_miss_stores_nothing,
    closed_stdout_on_hit_exits_141,
    verbose_says_hit_or_miss,
    counters_follow_hits_misses_and_entries,
    clear_by_filter_or_command_line,
    ls_and_show_report_entries,
    precache_is_served_by_run,
    stats_reset_keeps_entries,
    gc_evicts_least_recently_used,
    a_store_over_max_size_is_collected_in_the_background,
    cleanup_stale_clears_the_namespace_in_the_background,
    export_import_round_trips,
    a_mistyped_option_is_never_run_as_the_command,
    the_longest_durations_are_honoured,
    outputs_are_restored_byte_exact,
    a_changed_output_set_is_another_key,
    stdin_and_input_combine_with_outputs,
    forged_and_unsigned_entries_are_not_served,
    stale_if_error_serves_the_stale_entry_only_when_the_command_fails,
    waiters_behind_a_failed_owner_get_the_stale_entry,
    stale_if_error_restores_the_stale_entrys_outputs,
);
