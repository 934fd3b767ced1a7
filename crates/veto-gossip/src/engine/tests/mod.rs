//! Engine tests: whole scenarios in an in-memory world of engines
//! (`replication`, `backlog`, `sources`), and single-engine protocol rules
//! driven by hand (`protocol`).

mod backlog;
mod chaos;
mod echo;
mod harness;
mod integrity;
mod protocol;
mod replication;
mod reports;
mod rounds;
mod sources;
mod store;
mod tree;
