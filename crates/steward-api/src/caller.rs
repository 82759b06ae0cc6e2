//! Who is calling: what the authorisation middleware leaves on a request for handlers, so
//! handlers depend on this and never on the middleware (or the route table it reads).

use std::net::IpAddr;

use steward_core::Principal;
use steward_core::audit::Actor;

/// The caller of a request that passed [`authorize`](crate::auth::authorize), for handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// From where.
    pub ip: Option<IpAddr>,
}

impl Caller {
    /// The caller as an audit actor.
    pub fn actor(&self) -> Actor {
        Actor::key(&self.principal.name, self.ip.map(|ip| ip.to_string()))
    }
}
