//! Who may call a route: the rule each entry of the route table carries, which the
//! authorisation middleware enforces and the OpenAPI document states.

use steward_core::Role;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key.
    Public,
    /// A key with at least this role; scoped keys allowed (handlers show them only their
    /// workspace).
    Role(Role),
    /// A key with at least this role and no workspace scope (it acts on everything).
    Unscoped(Role),
    /// A key with at least this role whose scope includes the workspace named by this path
    /// parameter.
    Workspace(Role, &'static str),
    /// The `agent` key of the node named by this path parameter, and no other key.
    Node(&'static str),
}

impl Access {
    /// What a key must have: role, the workspace path parameter to check, and whether it must
    /// be unscoped. `None` for public routes.
    pub(crate) fn requirement(self) -> Option<(Role, Option<&'static str>, bool)> {
        match self {
            Access::Public => None,
            Access::Role(role) => Some((role, None, false)),
            Access::Unscoped(role) => Some((role, None, true)),
            Access::Workspace(role, param) => Some((role, Some(param), false)),
            Access::Node(_) => Some((Role::Agent, None, false)),
        }
    }

    /// The path parameter naming the node whose agent alone may call, for [`Access::Node`].
    pub(crate) fn node_param(self) -> Option<&'static str> {
        match self {
            Access::Node(param) => Some(param),
            _ => None,
        }
    }
}
