#![no_main]
//! A whole database file, or a database and its WAL split from one input
//! (see `entries::split`): through info and check, dump in every format,
//! replay, and recover with --history and --deleted (see `entries::files`).
use libfuzzer_sys::fuzz_target;

#[path = "../entries.rs"]
#[allow(dead_code)]
mod entries;

fuzz_target!(|data: &[u8]| entries::files(data, "-wal"));
