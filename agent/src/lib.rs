//! The workspace agent: the process inside each sandbox. The wire contract shared
//! with the control plane lives in [`wire`].

pub mod wire;
