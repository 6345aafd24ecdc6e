//! Egress proxy.
