//! Permissions (SPEC §3) and a copyable bit set of them. Effective permissions are always
//! `key ∩ user's current permissions`, computed per request, never cached on the key.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    SubscribeWebhook,
    SubscribeAllWebhook,
    ReadCustomer,
    WriteCustomer,
    MedicalCustomer,
    ExportCustomer,
    ReadService,
    ReadUser,
    ReadLead,
    IngestEvent,
    AdminWebhook,
}

impl Permission {
    pub const ALL: [Permission; 11] = [
        Permission::SubscribeWebhook,
        Permission::SubscribeAllWebhook,
        Permission::ReadCustomer,
        Permission::WriteCustomer,
        Permission::MedicalCustomer,
        Permission::ExportCustomer,
        Permission::ReadService,
        Permission::ReadUser,
        Permission::ReadLead,
        Permission::IngestEvent,
        Permission::AdminWebhook,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Permission::SubscribeWebhook => "subscribe:webhook",
            Permission::SubscribeAllWebhook => "subscribe.all:webhook",
            Permission::ReadCustomer => "read:customer",
            Permission::WriteCustomer => "write:customer",
            Permission::MedicalCustomer => "medical:customer",
            Permission::ExportCustomer => "export:customer",
            Permission::ReadService => "read:service",
            Permission::ReadUser => "read:user",
            Permission::ReadLead => "read:lead",
            Permission::IngestEvent => "ingest:event",
            Permission::AdminWebhook => "admin:webhook",
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of permissions as a bit mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PermissionSet(u16);

impl PermissionSet {
    pub const EMPTY: PermissionSet = PermissionSet(0);

    pub fn all() -> PermissionSet {
        PermissionSet::from_iter(Permission::ALL)
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn insert(&mut self, p: Permission) {
        self.0 |= p.bit();
    }

    pub fn intersect(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 & other.0)
    }

    pub fn is_subset_of(self, other: PermissionSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    /// The names, in catalog order (stable output for the API and the journal).
    pub fn names(self) -> Vec<String> {
        self.iter().map(|p| p.name().to_string()).collect()
    }

    /// Parses a list of names; the error names the first unknown one.
    pub fn parse_names<S: AsRef<str>>(names: &[S]) -> Result<PermissionSet, String> {
        let mut set = PermissionSet::EMPTY;
        for name in names {
            match Permission::parse(name.as_ref()) {
                Some(p) => set.insert(p),
                None => return Err(name.as_ref().to_string()),
            }
        }
        Ok(set)
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = PermissionSet::EMPTY;
        for p in iter {
            set.insert(p);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.name()), Some(p));
        }
        assert_eq!(Permission::parse("read:everything"), None);
    }

    #[test]
    fn set_algebra() {
        let a = PermissionSet::parse_names(&["read:customer", "ingest:event"]).unwrap();
        let b = PermissionSet::parse_names(&["read:customer"]).unwrap();
        assert!(b.is_subset_of(a));
        assert!(!a.is_subset_of(b));
        assert_eq!(a.intersect(b), b);
        assert_eq!(a.names(), vec!["read:customer", "ingest:event"]);
        assert_eq!(
            PermissionSet::parse_names(&["read:customer", "nope"]),
            Err("nope".to_string())
        );
        assert_eq!(PermissionSet::all().iter().count(), Permission::ALL.len());
    }
}
