//! Integration tests: everything over real sockets against the real server.

mod common;

mod access;
mod account_life;
mod accounts;
mod admin;
mod admin_data;
mod backup;
mod blobs;
mod chaos;
mod cluster;
mod collections;
mod crash;
mod durability;
mod events;
mod faults;
mod faults_bounded;
mod holes;
mod hostile;
mod idempotent;
mod import;
mod kv;
mod legacy;
mod limits;
mod log_output;
mod metrics;
mod presence;
mod protocol;
mod reaping;
mod rest;
mod resume;
mod socketio;
mod updates;
mod users;
mod wal_damage;
mod watch;
