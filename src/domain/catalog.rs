//! The event catalog (SPEC §2): the only public types accepted, with the permission a subscriber
//! needs to read each and whether it is account-wide or scoped to an assigned user.

use super::permission::Permission;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Reaches every active subscription for the type.
    AccountWide,
    /// Reaches the assigned user, owners and `subscribe.all:webhook` holders; unassigned
    /// entities are account-wide.
    UserScoped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventType {
    pub name: &'static str,
    pub read_permission: Permission,
    pub scope: Scope,
}

const fn t(name: &'static str, read_permission: Permission, scope: Scope) -> EventType {
    EventType {
        name,
        read_permission,
        scope,
    }
}

pub const CATALOG: [EventType; 11] = [
    t(
        "customer.created",
        Permission::ReadCustomer,
        Scope::AccountWide,
    ),
    t(
        "customer.updated",
        Permission::ReadCustomer,
        Scope::AccountWide,
    ),
    t("user.created", Permission::ReadUser, Scope::AccountWide),
    t(
        "service.created",
        Permission::ReadService,
        Scope::UserScoped,
    ),
    t(
        "service.completed",
        Permission::ReadService,
        Scope::UserScoped,
    ),
    t(
        "service.user_assigned",
        Permission::ReadService,
        Scope::UserScoped,
    ),
    t(
        "service_session.created",
        Permission::ReadService,
        Scope::UserScoped,
    ),
    t(
        "service_session.started",
        Permission::ReadService,
        Scope::UserScoped,
    ),
    t(
        "service_session.ended",
        Permission::ReadService,
        Scope::UserScoped,
    ),
    t(
        "release_form.generated",
        Permission::ReadService,
        Scope::UserScoped,
    ),
    t("lead.created", Permission::ReadLead, Scope::UserScoped),
];

/// Looks up a public event type by name.
pub fn lookup(name: &str) -> Option<&'static EventType> {
    CATALOG.iter().find(|t| t.name == name)
}

/// The catalog's names, for error messages.
pub fn names() -> Vec<&'static str> {
    CATALOG.iter().map(|t| t.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_is_the_spec_table() {
        assert_eq!(CATALOG.len(), 11);
        let c = lookup("customer.created").unwrap();
        assert_eq!(c.read_permission, Permission::ReadCustomer);
        assert_eq!(c.scope, Scope::AccountWide);
        let l = lookup("lead.created").unwrap();
        assert_eq!(l.read_permission, Permission::ReadLead);
        assert_eq!(l.scope, Scope::UserScoped);
        assert!(lookup("registry.user_upserted").is_none());
        assert!(lookup("customer.deleted").is_none());
    }
}
