//! Test-only helpers shared by the crates' unit and integration tests, benchmarks and
//! examples: a real `redis-server` ([`redis::RedisServer`]) and a real `moto_server`
//! ([`moto::MotoServer`]) on free loopback ports, each killed on drop. Never a
//! dependency of a production binary (only `[dev-dependencies]` name it).
#![forbid(unsafe_code)]

pub mod moto;
pub mod redis;

pub use moto::MotoServer;
pub use redis::RedisServer;
