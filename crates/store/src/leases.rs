//! IPAM: guest addresses leased to VMs.
//!
//! The store knows nothing about subnets beyond their text and the inclusive range of
//! guest addresses the caller passes (the network crate computes it). An address is held
//! by at most one VM (primary key) and a VM holds at most one address (unique); a lease
//! disappears with its VM's row.

use std::net::Ipv4Addr;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::error::{StoreError, extended_code};
use crate::migrations::classify;
use crate::model::now_rfc3339;
use crate::{Store, sql};

/// One VM's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpLease {
    pub address: Ipv4Addr,
    pub vm_id: String,
    /// The subnet it was leased from, as the caller wrote it (`10.213.0.0/24`).
    pub subnet: String,
    pub created_at: String,
}

fn parse_address(text: &str) -> rusqlite::Result<Ipv4Addr> {
    text.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<IpLease> {
    Ok(IpLease {
        address: parse_address(&row.get::<_, String>(0)?)?,
        vm_id: row.get(1)?,
        subnet: row.get(2)?,
        created_at: row.get(3)?,
    })
}

impl Store {
    /// The address of VM `vm_id` in `subnet`, leasing one from `first..=last` if it has
    /// none there. Idempotent: asking again returns the same lease. A lease the VM holds in
    /// another subnet (the configured subnet changed) is replaced.
    ///
    /// Addresses are handed out round-robin, starting after the last one handed out in that subnet,
    /// so a released address is reused as late as possible (stale ARP entries and
    /// connections to it die out first). Errors: [`StoreError::VmNotFound`],
    /// [`StoreError::AddressesExhausted`].
    pub fn lease_address(
        &self,
        vm_id: &str,
        subnet: &str,
        first: Ipv4Addr,
        last: Ipv4Addr,
    ) -> Result<IpLease, StoreError> {
        let object = format!("the address range of {subnet}");
        if u32::from(first) > u32::from(last) {
            return Err(StoreError::InvalidValue {
                object,
                field: "range",
                reason: format!("{first} is after {last}"),
            });
        }
        let classify = |e| classify(e, &self.path);
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        let existing = tx
            .query_row(
                "SELECT address, vm_id, subnet, created_at FROM ip_leases WHERE vm_id = ?1",
                [vm_id],
                from_row,
            )
            .optional()
            .map_err(classify)?;
        if let Some(lease) = existing {
            let in_range = (u32::from(first)..=u32::from(last)).contains(&u32::from(lease.address));
            if lease.subnet == subnet && in_range {
                return Ok(lease);
            }
            tx.execute("DELETE FROM ip_leases WHERE vm_id = ?1", [vm_id])
                .map_err(classify)?;
        }

        let mut taken = std::collections::HashSet::new();
        {
            let mut stmt = tx
                .prepare("SELECT address FROM ip_leases")
                .map_err(classify)?;
            let rows = stmt
                .query_map([], |r| parse_address(&r.get::<_, String>(0)?))
                .map_err(classify)?;
            for address in rows {
                taken.insert(u32::from(address.map_err(classify)?));
            }
        }
        let latest = tx
            .query_row(
                "SELECT last_address FROM ip_lease_cursor WHERE subnet = ?1",
                [subnet],
                |r| parse_address(&r.get::<_, String>(0)?),
            )
            .optional()
            .map_err(classify)?
            .map(u32::from);
        let (lo, hi) = (u32::from(first), u32::from(last));
        let size = u64::from(hi - lo) + 1;
        let start = match latest {
            Some(a) if (lo..hi).contains(&a) => a + 1,
            _ => lo,
        };
        let address = (start..=hi)
            .chain(lo..start)
            .find(|a| !taken.contains(a))
            .map(Ipv4Addr::from)
            .ok_or_else(|| StoreError::AddressesExhausted {
                subnet: subnet.to_string(),
                size,
            })?;
        let lease = IpLease {
            address,
            vm_id: vm_id.to_string(),
            subnet: subnet.to_string(),
            created_at: now_rfc3339(),
        };
        let inserted = tx.execute(
            "INSERT INTO ip_leases (address, vm_id, subnet, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                lease.address.to_string(),
                lease.vm_id,
                lease.subnet,
                lease.created_at
            ],
        );
        match inserted.map_err(|e| (extended_code(&e), e)) {
            Ok(_) => {}
            Err((Some(sql::CONSTRAINT_FOREIGNKEY), _)) => {
                return Err(StoreError::VmNotFound(vm_id.to_string()));
            }
            Err((_, e)) => return Err(classify(e)),
        }
        tx.execute(
            "INSERT INTO ip_lease_cursor (subnet, last_address) VALUES (?1, ?2) \
             ON CONFLICT (subnet) DO UPDATE SET last_address = excluded.last_address",
            params![lease.subnet, lease.address.to_string()],
        )
        .map_err(classify)?;
        tx.commit().map_err(classify)?;
        Ok(lease)
    }

    /// The lease VM `vm_id` holds, if any.
    pub fn lease_of(&self, vm_id: &str) -> Result<Option<IpLease>, StoreError> {
        self.conn
            .query_row(
                "SELECT address, vm_id, subnet, created_at FROM ip_leases WHERE vm_id = ?1",
                [vm_id],
                from_row,
            )
            .optional()
            .map_err(|e| classify(e, &self.path))
    }

    /// Release VM `vm_id`'s address; returns it, or `None` if it held none.
    pub fn release_address(&self, vm_id: &str) -> Result<Option<Ipv4Addr>, StoreError> {
        let classify = |e| classify(e, &self.path);
        let tx = self.transaction(TransactionBehavior::Immediate)?;
        let address = tx
            .query_row(
                "DELETE FROM ip_leases WHERE vm_id = ?1 RETURNING address",
                [vm_id],
                |r| parse_address(&r.get::<_, String>(0)?),
            )
            .optional()
            .map_err(classify)?;
        tx.commit().map_err(classify)?;
        Ok(address)
    }

    /// Every lease, oldest first.
    pub fn list_leases(&self) -> Result<Vec<IpLease>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT address, vm_id, subnet, created_at FROM ip_leases ORDER BY rowid")
            .map_err(|e| classify(e, &self.path))?;
        let rows = stmt
            .query_map([], from_row)
            .map_err(|e| classify(e, &self.path))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| classify(e, &self.path))
    }
}
