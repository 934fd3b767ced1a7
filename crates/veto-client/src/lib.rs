//! veto-client: a Rust client for veto nodes.
