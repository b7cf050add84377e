#![no_main]
//! See `entries::header`.
use libfuzzer_sys::fuzz_target;

#[path = "../entries.rs"]
#[allow(dead_code)]
mod entries;

fuzz_target!(|data: &[u8]| entries::header(data));
