//! Who is asking: the actor every operation takes, what it may see, and how
//! it is written into the audit trail.

use crate::crypto::credential::CredentialId;
use crate::ids::TenantName;
use crate::store::access::{ActorKind, Audit};

/// The authenticated principal behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The command line against the database: whoever can open the database
    /// may do anything, so it acts as an admin. `user` is the OS user name.
    Local { user: String },
    /// An admin credential: every tenant, and credentials.
    Admin { credential: CredentialId },
    /// A tenant credential: its own tenant only; every other tenant is
    /// answered as if it did not exist.
    Tenant {
        tenant: TenantName,
        credential: CredentialId,
    },
    /// The legacy global secret (`serve --allow-legacy-global-secret`),
    /// naming the tenant it acts for: treated like that tenant's credential,
    /// never as an admin, and every use is warned about, audited and
    /// counted.
    Legacy { tenant: TenantName },
}

/// A principal plus where the request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub principal: Principal,
    /// The client's address (`ip:port`), or `local`.
    pub source: String,
    /// Names this request in the audit trail and in responses.
    pub request_id: String,
}

impl Actor {
    /// The command line run by `user`, with a fresh request id.
    pub fn local(user: impl Into<String>) -> Self {
        Self {
            principal: Principal::Local { user: user.into() },
            source: "local".to_string(),
            request_id: new_request_id(),
        }
    }

    pub fn kind(&self) -> ActorKind {
        match self.principal {
            Principal::Local { .. } => ActorKind::Local,
            Principal::Admin { .. } => ActorKind::Admin,
            Principal::Tenant { .. } => ActorKind::Tenant,
            Principal::Legacy { .. } => ActorKind::Legacy,
        }
    }

    /// The credential id, or the local user name.
    pub fn id(&self) -> &str {
        match &self.principal {
            Principal::Local { user } => user,
            Principal::Admin { credential } | Principal::Tenant { credential, .. } => {
                credential.as_str()
            }
            Principal::Legacy { .. } => "global-secret",
        }
    }

    /// `kind:id`, the event's `actor` column.
    pub fn label(&self) -> String {
        format!("{}:{}", self.kind().as_str(), self.id())
    }

    /// Admins and the local command line act on everything.
    pub fn is_admin(&self) -> bool {
        matches!(
            self.principal,
            Principal::Local { .. } | Principal::Admin { .. }
        )
    }

    /// The one tenant a tenant credential is for.
    pub fn own_tenant(&self) -> Option<&TenantName> {
        match &self.principal {
            Principal::Tenant { tenant, .. } | Principal::Legacy { tenant } => Some(tenant),
            Principal::Local { .. } | Principal::Admin { .. } => None,
        }
    }

    /// May this actor see (and so change) `tenant`?
    pub fn sees(&self, tenant: &TenantName) -> bool {
        self.own_tenant().is_none_or(|own| own == tenant)
    }

    pub fn audit(&self) -> Audit {
        Audit {
            actor_kind: self.kind(),
            actor_id: self.id().to_string(),
            source: self.source.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

/// A random request id (UUID v4, hyphenated), from the thread's CSPRNG
/// (`rand::rng`) rather than the kernel's: every request gets one, and
/// `Uuid::new_v4` costs a `getrandom` system call each time.
pub fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_hyphenated_v4_uuids() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(id.len(), 36);
        }
    }

    fn name(s: &str) -> TenantName {
        TenantName::parse(s).unwrap()
    }

    #[test]
    fn a_tenant_credential_sees_only_its_tenant() {
        let cred = CredentialId::parse("0011223344556677").unwrap();
        let t = Actor {
            principal: Principal::Tenant {
                tenant: name("acme"),
                credential: cred.clone(),
            },
            source: "10.0.0.1:1".into(),
            request_id: "r".into(),
        };
        assert!(t.sees(&name("acme")) && !t.sees(&name("globex")));
        assert!(!t.is_admin());
        assert_eq!(t.label(), "tenant:0011223344556677");
        let a = Actor {
            principal: Principal::Admin { credential: cred },
            ..t.clone()
        };
        assert!(a.sees(&name("globex")) && a.is_admin());
        let l = Actor::local("alice");
        assert_eq!(
            (l.label().as_str(), l.source.as_str()),
            ("local:alice", "local")
        );
        assert_ne!(Actor::local("a").request_id, l.request_id);
    }
}
