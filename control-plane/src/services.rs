//! The services of one control-plane process, built once over one shared fleet
//! context: lifecycle, execution, membership and the warm pool (the reaper is built by
//! the server over the same). The API holds this and talks to nothing else.

use std::sync::Arc;

use crate::{
    execution::Execution, fleet::Fleet, lifecycle::Lifecycle, membership::Membership,
    pool::WarmPool,
};

#[derive(Clone)]
pub struct Services {
    pub fleet: Arc<Fleet>,
    pub lifecycle: Arc<Lifecycle>,
    pub execution: Arc<Execution>,
    pub membership: Arc<Membership>,
    pub pool: Arc<WarmPool>,
}

impl Services {
    pub fn new(fleet: Arc<Fleet>) -> Self {
        let lifecycle = Arc::new(Lifecycle::new(fleet.clone()));
        let membership = Arc::new(Membership::new(lifecycle.clone()));
        Self {
            execution: Arc::new(Execution::new(lifecycle.clone())),
            pool: Arc::new(WarmPool::new(lifecycle.clone(), membership.clone())),
            fleet,
            lifecycle,
            membership,
        }
    }
}
