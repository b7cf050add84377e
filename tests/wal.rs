//! Snapshots at every commit of a WAL, against SQLite's state after each.
