//! Attachments of reports (through their assignment) and submissions: PDF, JPEG or PNG, at most
//! [`MAX_BYTES`], the declared media type checked against the content's signature, stored with
//! their SHA-256 and never changed. Whoever may see the assignment or the submission reads its
//! attachments; others get NOT_FOUND.
//!
//! Uploads: the assignment's expert, or the dispatching bureau's staff (city roles anywhere) for
//! them (D16), while the assignment is ACCEPTED or COMPLETED (a report follows the work); the
//! submission's submitter or staff who see it, until it is CLOSED.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::{Any, Row, Transaction};
use supervision_kit::{
    Caller, Db, FieldViolations, SharedClock,
    audit::{self, Change},
    idempotency::Command,
    storage::{format_instant, parse_instant},
    vocab::{is_prefixed_id, new_prefixed_id},
};
use supervision_proto::{common, dispatch as pb};
use tonic::{Code, Status};

use crate::{
    domain::{AssignmentId, AssignmentStatus, SubmissionId, SubmissionStatus, Visibility},
    error::Error,
    store::{self, StoreError},
};

/// 10 MiB, as the contract says.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;
const MAX_FILE_NAME_CHARS: usize = 200;

/// The media types accepted, each with the signature its content starts with.
const TYPES: [(&str, &[u8]); 3] =
    [("application/pdf", b"%PDF-"), ("image/jpeg", &[0xFF, 0xD8, 0xFF]), ("image/png", b"\x89PNG\r\n\x1a\n")];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Assignment(AssignmentId),
    Submission(SubmissionId),
}

/// A checked upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub owner: Owner,
    pub file_name: String,
    pub media_type: String,
    pub content: Vec<u8>,
}

/// A stored attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub id: String,
    pub owner: Owner,
    pub file_name: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub uploaded_at: DateTime<Utc>,
}

impl Attachment {
    pub fn to_proto(&self) -> common::DocumentRef {
        common::DocumentRef {
            id: self.id.clone(),
            file_name: self.file_name.clone(),
            media_type: self.media_type.clone(),
            size_bytes: self.size_bytes,
            sha256: self.sha256.clone(),
        }
    }
}

pub fn is_attachment_id(raw: &str) -> bool {
    is_prefixed_id(raw, "att_")
}

/// Checks an upload's fields: one owner, a plain file name, an accepted media type whose
/// signature the content carries, 1 byte to 10 MiB.
pub fn upload(req: pb::UploadAttachmentRequest) -> Result<Upload, Status> {
    let mut v = FieldViolations::new();
    let owner = match &req.owner {
        Some(pb::upload_attachment_request::Owner::AssignmentId(id)) => {
            let parsed = AssignmentId::parse(id).map(Owner::Assignment);
            if parsed.is_none() {
                v.add("assignment_id", "is not an assignment id (asg_...)");
            }
            parsed
        }
        Some(pb::upload_attachment_request::Owner::SubmissionId(id)) => {
            let parsed = SubmissionId::parse(id).map(Owner::Submission);
            if parsed.is_none() {
                v.add("submission_id", "is not a submission id (sub_...)");
            }
            parsed
        }
        None => {
            v.add("owner", "name the assignment (for its report) or the submission the file belongs to");
            None
        }
    };
    let name = req.file_name.trim();
    if name.is_empty() {
        v.add("file_name", "is required");
    } else if name.chars().count() > MAX_FILE_NAME_CHARS {
        v.add("file_name", format!("at most {MAX_FILE_NAME_CHARS} characters"));
    } else if name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        v.add("file_name", "a file name, without a path or control characters");
    }
    match TYPES.iter().find(|(t, _)| *t == req.media_type) {
        None => v.add("media_type", "must be application/pdf, image/jpeg or image/png"),
        Some((t, signature)) if !req.content.is_empty() && !req.content.starts_with(signature) => {
            v.add("content", format!("is not a {t} file (its first bytes do not match)"));
        }
        Some(_) => {}
    }
    if req.content.is_empty() {
        v.add("content", "is empty");
    } else if req.content.len() > MAX_BYTES {
        v.add("content", format!("is {} bytes; at most {MAX_BYTES} (10 MiB)", req.content.len()));
    }
    v.check()?;
    Ok(Upload {
        owner: owner.expect("recorded as a violation"),
        file_name: name.to_owned(),
        media_type: req.media_type,
        content: req.content,
    })
}

fn refused(reason: &'static str, message: String) -> Error {
    Error::draw_refused(Code::FailedPrecondition, reason, message)
}

/// Whether `caller` may see `owner`; NOT_FOUND when not.
async fn check_visible(db: &Db, caller: &Caller, owner: &Owner) -> Result<Option<String>, Error> {
    match owner {
        Owner::Assignment(id) => {
            let a = crate::responses::visible(db, caller, id).await?;
            Ok(Some(a.status.code().to_owned()))
        }
        Owner::Submission(id) => {
            let s = store::get_submission(db.pool(), id)
                .await?
                .filter(|s| Visibility::of(caller).allows(s))
                .ok_or_else(|| Error::SubmissionNotFound(id.to_string()))?;
            Ok(Some(s.status.code().to_owned()))
        }
    }
}

/// The checks before the transaction: the caller sees the owner, which still takes files.
pub async fn check_upload(db: &Db, caller: &Caller, upload: &Upload) -> Result<(), Error> {
    let state = check_visible(db, caller, &upload.owner).await?.unwrap_or_default();
    match &upload.owner {
        Owner::Assignment(id) => {
            let open = [AssignmentStatus::Accepted.code(), AssignmentStatus::Completed.code()];
            if !open.contains(&state.as_str()) {
                return Err(refused(
                    "ASSIGNMENT_NOT_REPORTABLE",
                    format!("assignment {id} is {state}; a report's files belong to an accepted assignment"),
                ));
            }
        }
        Owner::Submission(id) => {
            if state == SubmissionStatus::Closed.code() {
                return Err(refused("SUBMISSION_CLOSED", format!("submission {id} is closed")));
            }
        }
    }
    Ok(())
}

/// Stores a checked upload inside `tx`, with its audit entry (the hash, not the content).
pub async fn store(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    caller: &Caller,
    command: &Command,
    upload: Upload,
) -> Result<Attachment, Error> {
    let now = clock.now();
    let sha256 = hex::encode(Sha256::digest(&upload.content));
    let (assignment, submission) = match &upload.owner {
        Owner::Assignment(id) => (id.to_string(), String::new()),
        Owner::Submission(id) => (String::new(), id.to_string()),
    };
    let attachment = Attachment {
        id: new_prefixed_id("att_"),
        owner: upload.owner.clone(),
        file_name: upload.file_name,
        media_type: upload.media_type,
        size_bytes: i64::try_from(upload.content.len()).unwrap_or(i64::MAX),
        sha256,
        uploaded_at: now,
    };
    let actor = caller.actor();
    sqlx::query(
        "INSERT INTO attachments (id, assignment_id, submission_id, file_name, media_type, size_bytes, sha256, \
         content, uploaded_by_subject, uploaded_by_role, uploaded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&attachment.id)
    .bind(&assignment)
    .bind(&submission)
    .bind(&attachment.file_name)
    .bind(&attachment.media_type)
    .bind(attachment.size_bytes)
    .bind(&attachment.sha256)
    .bind(upload.content)
    .bind(&actor.subject)
    .bind(&actor.role)
    .bind(format_instant(now))
    .execute(&mut **tx)
    .await?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "attachment",
        entity_id: &attachment.id,
        action: "upload",
        before: None,
        after: Some(serde_json::json!({
            "assignment_id": assignment,
            "submission_id": submission,
            "file_name": attachment.file_name,
            "media_type": attachment.media_type,
            "size_bytes": attachment.size_bytes,
            "sha256": attachment.sha256,
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await?;
    Ok(attachment)
}

/// Reads an attachment and its content, for a caller who may see its owner.
pub async fn get(db: &Db, caller: &Caller, id: &str) -> Result<(Attachment, Vec<u8>), Error> {
    let not_found =
        || Error::draw_refused(Code::NotFound, "ATTACHMENT_NOT_FOUND", format!("attachment {id} not found"));
    let row = {
        let mut conn = db.pool().acquire().await?;
        sqlx::query(
            "SELECT id, assignment_id, submission_id, file_name, media_type, size_bytes, sha256, content, uploaded_at \
             FROM attachments WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(not_found)?
    };
    let bad = |problem: String| Error::Store(StoreError::Corrupt { id: id.to_owned(), problem });
    let assignment: String = row.try_get("assignment_id")?;
    let submission: String = row.try_get("submission_id")?;
    let owner = if assignment.is_empty() {
        Owner::Submission(SubmissionId::parse(&submission).ok_or_else(|| bad(format!("submission {submission:?}")))?)
    } else {
        Owner::Assignment(AssignmentId::parse(&assignment).ok_or_else(|| bad(format!("assignment {assignment:?}")))?)
    };
    check_visible(db, caller, &owner).await.map_err(|_| not_found())?;
    let uploaded: String = row.try_get("uploaded_at")?;
    let content: Vec<u8> = row.try_get("content")?;
    let attachment = Attachment {
        id: row.try_get("id")?,
        owner,
        file_name: row.try_get("file_name")?,
        media_type: row.try_get("media_type")?,
        size_bytes: row.try_get("size_bytes")?,
        sha256: row.try_get("sha256")?,
        uploaded_at: parse_instant(&uploaded).map_err(|e| bad(format!("uploaded_at: {e}")))?,
    };
    if hex::encode(Sha256::digest(&content)) != attachment.sha256 {
        return Err(bad("the content no longer matches its SHA-256".into()));
    }
    Ok((attachment, content))
}

/// What the files named by a report or a submission may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// A report's: files uploaded for its assignment.
    Report(&'a AssignmentId),
    /// A submission's: files whose report or submission the caller may see.
    Submission,
}

/// Checks the attachments a report or a submission names, as `(field, id)` pairs: each must be an
/// uploaded file within `scope`. An unknown file and one out of scope get the same field
/// violation, so the answer tells nothing about files the caller may not see.
pub async fn check_named(db: &Db, caller: &Caller, scope: Scope<'_>, named: &[(String, String)]) -> Result<(), Status> {
    let mut v = FieldViolations::new();
    for (field, id) in named {
        if !is_attachment_id(id) {
            v.add(field.clone(), "is not an attachment id (att_...)");
            continue;
        }
        let row = {
            let mut conn = db.pool().acquire().await.map_err(Error::from)?;
            sqlx::query("SELECT assignment_id, submission_id FROM attachments WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(Error::from)?
        };
        let owner = match row {
            None => None,
            Some(row) => {
                let assignment: String = row.try_get("assignment_id").map_err(Error::from)?;
                let submission: String = row.try_get("submission_id").map_err(Error::from)?;
                if assignment.is_empty() {
                    SubmissionId::parse(&submission).map(Owner::Submission)
                } else {
                    AssignmentId::parse(&assignment).map(Owner::Assignment)
                }
            }
        };
        let allowed = match (scope, owner) {
            (_, None) => false,
            (Scope::Report(assignment), Some(owner)) => owner == Owner::Assignment(assignment.clone()),
            (Scope::Submission, Some(owner)) => check_visible(db, caller, &owner).await.is_ok(),
        };
        if !allowed {
            let what = match scope {
                Scope::Report(assignment) => format!("names no file uploaded for assignment {assignment}"),
                Scope::Submission => "names no uploaded file you may attach".to_owned(),
            };
            v.add(field.clone(), what);
        }
    }
    v.check()
}
