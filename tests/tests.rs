//! One integration-test binary (links once): differential tests against
//! SQLite, WAL snapshots, the CLI and its effect on inputs.

mod attribution;
mod backup;
mod classes;
mod cli;
mod common;
mod corpus;
mod deleted;
mod differential;
mod forensic;
mod hostile;
mod indexes;
mod interrupt;
mod joined;
mod misplaced;
mod recover;
mod rules;
mod scale;
mod torn;
mod wal;
