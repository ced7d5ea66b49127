//! Integration tests: everything over real sockets against the real server.

mod common;

mod access;
mod accounts;
mod durability;
mod protocol;
mod resume;
mod updates;
mod watch;
