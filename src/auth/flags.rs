//! Account flags held in memory for every request to consult: disabled accounts and admins
//! (by configuration, `ADMIN_USERS`, or granted through the store). The store persists them;
//! this is the copy requests read without touching it.

use std::collections::HashSet;

use dashmap::DashSet;

pub struct Flags {
    /// Disabled accounts: their tokens are refused.
    disabled: DashSet<String>,
    /// Accounts allowed on `/v1/admin` by configuration (`ADMIN_USERS`).
    admins: Vec<String>,
    /// Accounts made admins through the store (`hearth user grant-admin`).
    granted: DashSet<String>,
}

impl Flags {
    pub fn new(admins: Vec<String>) -> Flags {
        Flags {
            disabled: DashSet::new(),
            admins,
            granted: DashSet::new(),
        }
    }

    pub fn is_disabled(&self, username: &str) -> bool {
        self.disabled.contains(username)
    }

    pub fn is_admin(&self, username: &str) -> bool {
        self.is_configured_admin(username) || self.granted.contains(username)
    }

    /// Whether `username` is an admin by `ADMIN_USERS` (which no command can revoke).
    pub fn is_configured_admin(&self, username: &str) -> bool {
        self.admins.iter().any(|a| a == username)
    }

    /// Records a grant (or its withdrawal) made through the store.
    pub fn set_granted_admin(&self, username: &str, admin: bool) {
        if admin {
            self.granted.insert(username.to_owned());
        } else {
            self.granted.remove(username);
        }
    }

    /// Loads accounts disabled in earlier runs.
    pub fn restore_disabled(&self, names: impl IntoIterator<Item = String>) {
        for name in names {
            self.disabled.insert(name);
        }
    }

    /// Marks the account disabled; true if it was not already. Closing its sockets is the
    /// caller's ([`super::Auth::disable`]).
    pub fn disable(&self, username: &str) -> bool {
        self.disabled.insert(username.to_owned())
    }

    pub fn enable(&self, username: &str) {
        self.disabled.remove(username);
    }

    /// Makes the disabled set exactly `wanted`; returns the names newly disabled.
    pub fn sync_disabled(&self, wanted: &HashSet<String>) -> Vec<String> {
        self.disabled.retain(|name| wanted.contains(name));
        wanted
            .iter()
            .filter(|name| self.disabled.insert((*name).clone()))
            .cloned()
            .collect()
    }

    /// Makes the granted admins exactly `names` (cluster catch-up).
    pub fn sync_granted_admins(&self, names: Vec<String>) {
        let wanted: HashSet<String> = names.into_iter().collect();
        self.granted.retain(|name| wanted.contains(name));
        for name in wanted {
            self.granted.insert(name);
        }
    }

    /// The account was deleted: its flags go with it, so a later account of the same name
    /// starts plain.
    pub fn forget_account(&self, username: &str) {
        self.disabled.remove(username);
        self.granted.remove(username);
    }
}
