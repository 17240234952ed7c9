//! The audit chain: who did what, for whom, when, with masked before and after values, appended
//! in the same transaction as the change.
//!
//! Each entry's hash is SHA-256 over its content and the previous entry's hash; the head row
//! (sequence and hash of the last entry) is locked by every append, so replicas never fork the
//! chain. The verifier finds an edited entry (its hash no longer matches), a deleted one (a gap,
//! or a head beyond the last entry), an inserted one (a broken link) and a rewritten tail (an
//! anchored head, exported earlier and kept elsewhere, that the chain no longer contains).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Any, AnyExecutor, Transaction};

use crate::{Backend, auth::Caller, clock::SharedClock, storage::format_instant};

/// The hash the first entry links to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One stored entry, as exported to verifiers (`supervision.common.v1.AuditEntry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub seq: i64,
    /// When the change was committed ([`crate::storage::format_instant`]).
    pub at: String,
    /// Who called: a user, or the SERVICE that relayed the user's action.
    pub caller_subject: String,
    pub caller_role: String,
    /// The user the change is for: the caller itself on a direct call.
    pub actor_subject: String,
    pub actor_role: String,
    /// The actor's bureau division code; empty for unscoped roles.
    pub actor_bureau: String,
    /// The gRPC method, or `job:<name>`.
    pub method: String,
    pub request_id: String,
    pub entity_type: String,
    pub entity_id: String,
    /// What happened: `create`, `update`, `status_change`, ...
    pub action: String,
    pub before_json: String,
    pub after_json: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// The bytes the hash covers besides `prev_hash`: a JSON array of the fields in contract
    /// order, an unambiguous encoding (no separator can be forged).
    pub fn canonical(&self) -> Vec<u8> {
        serde_json::json!([
            self.seq,
            self.at,
            self.caller_subject,
            self.caller_role,
            self.actor_subject,
            self.actor_role,
            self.actor_bureau,
            self.method,
            self.request_id,
            self.entity_type,
            self.entity_id,
            self.action,
            self.before_json,
            self.after_json,
        ])
        .to_string()
        .into_bytes()
    }

    /// SHA-256 (lower-case hex) over `prev_hash` followed by [`AuditEntry::canonical`].
    pub fn compute_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.as_bytes());
        hasher.update(self.canonical());
        hex::encode(hasher.finalize())
    }
}

/// The chain's head: the last entry's sequence number and hash (0 and [`GENESIS_HASH`] when empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

/// What a change records. Values must already be masked (no full ID number, phone or account).
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// The gRPC method (or `job:<name>`) that made the change.
    pub method: &'a str,
    /// The request's idempotency key; empty for jobs.
    pub request_id: &'a str,
    pub entity_type: &'a str,
    pub entity_id: &'a str,
    pub action: &'a str,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Appends an entry for `change` by `caller` inside `tx`, locking the head. Traced as
/// `audit.append` with the entity type, action and new sequence number (never the values).
#[tracing::instrument(
    name = "audit.append",
    skip_all,
    fields(entity_type = change.entity_type, action = change.action, seq = tracing::field::Empty)
)]
pub async fn append(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    clock: &SharedClock,
    caller: &Caller,
    change: Change<'_>,
) -> Result<AuditEntry, sqlx::Error> {
    let lock = match backend {
        Backend::Postgres => "SELECT seq, hash FROM kit_audit_head WHERE id = 1 FOR UPDATE",
        // SQLite write transactions already hold the database's write lock (BEGIN IMMEDIATE).
        Backend::Sqlite => "SELECT seq, hash FROM kit_audit_head WHERE id = 1",
    };
    let (head_seq, head_hash): (i64, String) = sqlx::query_as(lock).fetch_one(&mut **tx).await?;
    let actor = caller.actor();
    let mut entry = AuditEntry {
        seq: head_seq + 1,
        at: format_instant(clock.now()),
        caller_subject: caller.subject.clone(),
        caller_role: caller.role.code().to_owned(),
        actor_subject: actor.subject,
        actor_role: actor.role,
        actor_bureau: actor.bureau.unwrap_or_default(),
        method: change.method.to_owned(),
        request_id: change.request_id.to_owned(),
        entity_type: change.entity_type.to_owned(),
        entity_id: change.entity_id.to_owned(),
        action: change.action.to_owned(),
        before_json: change.before.map(|v| v.to_string()).unwrap_or_default(),
        after_json: change.after.map(|v| v.to_string()).unwrap_or_default(),
        prev_hash: head_hash,
        hash: String::new(),
    };
    entry.hash = entry.compute_hash();
    tracing::Span::current().record("seq", entry.seq);
    sqlx::query(
        "INSERT INTO kit_audit_log (seq, at, caller_subject, caller_role, actor_subject, actor_role, actor_bureau, \
         method, request_id, entity_type, entity_id, action, before_json, after_json, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(entry.seq)
    .bind(&entry.at)
    .bind(&entry.caller_subject)
    .bind(&entry.caller_role)
    .bind(&entry.actor_subject)
    .bind(&entry.actor_role)
    .bind(&entry.actor_bureau)
    .bind(&entry.method)
    .bind(&entry.request_id)
    .bind(&entry.entity_type)
    .bind(&entry.entity_id)
    .bind(&entry.action)
    .bind(&entry.before_json)
    .bind(&entry.after_json)
    .bind(&entry.prev_hash)
    .bind(&entry.hash)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE kit_audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(entry.seq)
        .bind(&entry.hash)
        .execute(&mut **tx)
        .await?;
    Ok(entry)
}

pub async fn head(db: impl AnyExecutor<'_>) -> Result<AuditHead, sqlx::Error> {
    let (seq, hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM kit_audit_head WHERE id = 1").fetch_one(db).await?;
    Ok(AuditHead { seq, hash })
}

/// Entries with `seq > after`, in order, at most `limit`.
pub async fn entries_after(db: impl AnyExecutor<'_>, after: i64, limit: i64) -> Result<Vec<AuditEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, at, caller_subject, caller_role, actor_subject, actor_role, actor_bureau, method, request_id, \
         entity_type, entity_id, action, before_json, after_json, prev_hash, hash \
         FROM kit_audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Where and how a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {seq}: {problem}")]
pub struct ChainBreak {
    pub seq: i64,
    pub problem: String,
}

/// Checks `entries` (all of them, in the order read) against the service's `head` and, when
/// given, a head anchored earlier elsewhere. Returns the number of entries verified.
pub fn verify(entries: &[AuditEntry], head: &AuditHead, anchor: Option<&AuditHead>) -> Result<usize, ChainBreak> {
    let mut prev_hash = GENESIS_HASH.to_owned();
    for (index, entry) in entries.iter().enumerate() {
        let expected_seq = i64::try_from(index).unwrap_or(i64::MAX) + 1;
        if entry.seq != expected_seq {
            let problem = if entry.seq > expected_seq {
                format!("entries {expected_seq}..{} are missing (deleted)", entry.seq - 1)
            } else {
                format!("entry out of order (expected sequence {expected_seq})")
            };
            return Err(ChainBreak { seq: entry.seq.min(expected_seq), problem });
        }
        if entry.prev_hash != prev_hash {
            return Err(ChainBreak {
                seq: entry.seq,
                problem: "does not link to the entry before it (an entry was inserted or replaced)".into(),
            });
        }
        if entry.compute_hash() != entry.hash {
            return Err(ChainBreak { seq: entry.seq, problem: "content does not match its hash (edited)".into() });
        }
        if anchor.is_some_and(|a| a.seq == entry.seq && a.hash != entry.hash) {
            return Err(ChainBreak { seq: entry.seq, problem: "differs from the anchored head (rewritten)".into() });
        }
        prev_hash.clone_from(&entry.hash);
    }
    let last_seq = entries.last().map_or(0, |e| e.seq);
    if head.seq != last_seq || head.hash != prev_hash {
        return Err(ChainBreak {
            seq: head.seq.max(last_seq),
            problem: format!(
                "the head says entry {} but the chain ends at entry {last_seq} (the last entries were deleted or the head altered)",
                head.seq
            ),
        });
    }
    if let Some(anchor) = anchor.filter(|a| a.seq > last_seq) {
        return Err(ChainBreak {
            seq: anchor.seq,
            problem: format!("the anchored head names entry {} but the chain ends at {last_seq} (deleted)", anchor.seq),
        });
    }
    Ok(entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> (Vec<AuditEntry>, AuditHead) {
        let mut prev = GENESIS_HASH.to_owned();
        let mut entries = Vec::new();
        for seq in 1..=n {
            let mut e = AuditEntry {
                seq,
                at: format!("2026-11-29T00:00:{seq:02}.000000Z"),
                caller_subject: "admin".into(),
                caller_role: "CITY_ADMIN".into(),
                actor_subject: "admin".into(),
                actor_role: "CITY_ADMIN".into(),
                actor_bureau: "440700".into(),
                method: "/supervision.registry.v1.RegistryService/CreateInstitution".into(),
                request_id: format!("req-{seq}"),
                entity_type: "institution".into(),
                entity_id: format!("ins_{seq}"),
                action: "create".into(),
                before_json: String::new(),
                after_json: format!("{{\"name\":\"机构{seq}\"}}"),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            e.hash = e.compute_hash();
            prev.clone_from(&e.hash);
            entries.push(e);
        }
        (entries, AuditHead { seq: n, hash: prev })
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (entries, head) = chain(5);
        assert_eq!(verify(&entries, &head, Some(&AuditHead { seq: 3, hash: entries[2].hash.clone() })), Ok(5));
        assert_eq!(verify(&[], &AuditHead { seq: 0, hash: GENESIS_HASH.into() }, None), Ok(0));
    }

    #[test]
    fn an_edited_entry_is_named() {
        let (mut entries, head) = chain(5);
        entries[2].after_json = "{\"name\":\"改\"}".into();
        assert_eq!(verify(&entries, &head, None).unwrap_err().seq, 3);
    }

    #[test]
    fn a_deleted_entry_is_named() {
        let (mut entries, head) = chain(5);
        entries.remove(1);
        assert_eq!(verify(&entries, &head, None).unwrap_err().seq, 2);
    }

    #[test]
    fn deleting_the_last_entry_is_found_through_the_head() {
        let (mut entries, head) = chain(5);
        entries.pop();
        assert_eq!(verify(&entries, &head, None).unwrap_err().seq, 5);
        // Even with the head row rewritten to match, an anchored head still finds it.
        let forged_head = AuditHead { seq: 4, hash: entries[3].hash.clone() };
        let anchor = AuditHead { seq: 5, hash: head.hash.clone() };
        assert_eq!(verify(&entries, &forged_head, Some(&anchor)).unwrap_err().seq, 5);
    }

    #[test]
    fn an_inserted_entry_is_named() {
        let (mut entries, _) = chain(5);
        let mut forged = entries[1].clone();
        forged.entity_id = "ins_forged".into();
        forged.hash = forged.compute_hash();
        entries.insert(2, forged);
        for (i, e) in entries.iter_mut().enumerate().skip(2) {
            e.seq = i64::try_from(i).unwrap() + 1;
        }
        let head = AuditHead { seq: 6, hash: entries[5].hash.clone() };
        assert_eq!(verify(&entries, &head, None).unwrap_err().seq, 3);
    }
}

/// The audit RPCs every service serves (`GetAuditHead`, `ListAuditEntries`), over the kit's
/// tables, in the shared `supervision.common.v1` messages.
pub mod api {
    use supervision_proto::common as pb;
    use tonic::Status;

    use super::{AuditEntry, AuditHead, entries_after, head};
    use crate::{Bureau, Db, FieldViolations, Page, error::database, storage::parse_instant};

    /// The head of `service`'s chain.
    pub async fn get_head(db: &Db, service: &str) -> Result<pb::AuditHead, Status> {
        let head = head(db.pool()).await.map_err(|e| database(&e))?;
        let time = if head.seq == 0 {
            None
        } else {
            super::entries_after(db.pool(), head.seq - 1, 1)
                .await
                .map_err(|e| database(&e))?
                .first()
                .and_then(|e| timestamp(&e.at))
        };
        Ok(pb::AuditHead {
            service: service.to_owned(),
            sequence: head.seq,
            entry_hash: if head.seq == 0 { String::new() } else { head.hash },
            time,
        })
    }

    /// One page of entries from `start_sequence` (or the page token), optionally only those of
    /// one record. Returns the entries and the next page token.
    pub async fn list(
        db: &Db,
        page: Option<&pb::PageRequest>,
        start_sequence: i64,
        entity_type: &str,
        entity_id: &str,
    ) -> Result<(Vec<pb::AuditEntry>, String), Status> {
        let mut v = FieldViolations::new();
        let page = Page::parse(page, "page", |t| t.parse::<i64>().is_ok_and(|n| n >= 0), &mut v);
        if start_sequence < 0 {
            v.add("start_sequence", "must not be negative");
        }
        v.check()?;
        let mut after = match &page.after {
            Some(token) => token.parse::<i64>().unwrap_or_default(),
            None => (start_sequence - 1).max(0),
        };
        let limit = usize::try_from(page.size).unwrap_or(50);
        let mut out = Vec::with_capacity(limit);
        // Filters are applied while scanning so a page holds up to `limit` matching entries.
        loop {
            let batch = entries_after(db.pool(), after, 500).await.map_err(|e| database(&e))?;
            let Some(last) = batch.last() else { return Ok((out, String::new())) };
            let last_seq = last.seq;
            for entry in batch {
                after = entry.seq;
                let matches = (entity_type.is_empty() || entry.entity_type == entity_type)
                    && (entity_id.is_empty() || entry.entity_id == entity_id);
                if matches {
                    out.push(to_proto(&entry));
                    if out.len() == limit {
                        let more = !entries_after(db.pool(), after, 1).await.map_err(|e| database(&e))?.is_empty();
                        return Ok((out, if more { after.to_string() } else { String::new() }));
                    }
                }
            }
            after = last_seq;
        }
    }

    fn timestamp(at: &str) -> Option<prost_types::Timestamp> {
        let t = parse_instant(at).ok()?;
        Some(prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or_default(),
        })
    }

    fn actor(subject: &str, role: &str, bureau: &str) -> pb::Actor {
        let role = pb::Role::from_str_name(&format!("ROLE_{role}")).unwrap_or(pb::Role::Unspecified);
        pb::Actor {
            subject: subject.to_owned(),
            role: role as i32,
            bureau: Bureau::from_division_code(bureau).map_or(0, |b| b.to_proto() as i32),
            expert_id: String::new(),
            display_name: String::new(),
        }
    }

    pub fn to_proto(e: &AuditEntry) -> pb::AuditEntry {
        pb::AuditEntry {
            sequence: e.seq,
            time: timestamp(&e.at),
            caller: Some(actor(&e.caller_subject, &e.caller_role, "")),
            actor: Some(actor(&e.actor_subject, &e.actor_role, &e.actor_bureau)),
            method: e.method.clone(),
            request_id: e.request_id.clone(),
            entity_type: e.entity_type.clone(),
            entity_id: e.entity_id.clone(),
            action: e.action.clone(),
            before_json: e.before_json.clone(),
            after_json: e.after_json.clone(),
            previous_hash: e.prev_hash.clone(),
            entry_hash: e.hash.clone(),
            canonical: e.canonical(),
        }
    }

    /// Rebuilds the stored entry from its exported form, for a verifier that must not trust
    /// the service's own `canonical` bytes. Fails when a field cannot be represented.
    pub fn from_proto(e: &pb::AuditEntry) -> Result<AuditEntry, String> {
        let at = e.time.as_ref().ok_or("entry without a time")?;
        let nanos = u32::try_from(at.nanos).map_err(|_| "negative nanoseconds")?;
        let at = chrono::DateTime::from_timestamp(at.seconds, nanos).ok_or("time out of range")?;
        let role = |a: &Option<pb::Actor>| {
            a.as_ref()
                .and_then(|a| pb::Role::try_from(a.role).ok())
                .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_owned())
                .unwrap_or_default()
        };
        let caller = e.caller.clone().unwrap_or_default();
        let actor = e.actor.clone().unwrap_or_default();
        Ok(AuditEntry {
            seq: e.sequence,
            at: crate::storage::format_instant(at),
            caller_subject: caller.subject,
            caller_role: role(&e.caller),
            actor_subject: actor.subject,
            actor_role: role(&e.actor),
            actor_bureau: Bureau::from_proto(actor.bureau).map(|b| b.division_code().to_owned()).unwrap_or_default(),
            method: e.method.clone(),
            request_id: e.request_id.clone(),
            entity_type: e.entity_type.clone(),
            entity_id: e.entity_id.clone(),
            action: e.action.clone(),
            before_json: e.before_json.clone(),
            after_json: e.after_json.clone(),
            prev_hash: e.previous_hash.clone(),
            hash: e.entry_hash.clone(),
        })
    }

    /// The head as the verifier compares it.
    pub fn head_from_proto(h: &pb::AuditHead) -> AuditHead {
        AuditHead {
            seq: h.sequence,
            hash: if h.sequence == 0 { super::GENESIS_HASH.to_owned() } else { h.entry_hash.clone() },
        }
    }
}
