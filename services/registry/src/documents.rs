//! Evidence files (UploadDocument, GetDocument): up to 10 MiB of PDF, JPEG or PNG, stored in the
//! database with their SHA-256, referred to from Evidence by their id.
//!
//! At rest (migration 0008): the content is encrypted with the deployment's personal-data key
//! (AES-256-GCM, the document id authenticated with it), since evidence is often a scan of an
//! identity document or a certificate; `content_encryption` says 'pd1'. Rows stored before
//! that migration hold the file as uploaded ('') and still read. The SHA-256 is of the plain file
//! and is checked again on every read, so a file that does not come back whole is never served.
//!
//! Who (docs/rpc-roles.md): staff upload for any expert (or for none yet); an EXPERT uploads only
//! for their own record. Content goes only to the roles that see the owning expert's full profile
//! (CITY_ADMIN, CITY_REVIEWER, AUDITOR) and to the expert themself; an EXPERT asking for another
//! expert's file gets NOT_FOUND, as if it did not exist. The bytes must be what the media type
//! says (the file's signature is checked), so a file named `.pdf` that is not a PDF is refused.

use sha2::{Digest, Sha256};
use sqlx::{Any, Row, Transaction};
use supervision_kit::{
    Caller, Db, FieldViolations, Role, SharedClock,
    audit::{self, Change},
    idempotency::Command,
    personal::PersonalDataKey,
    storage::format_instant,
};
use supervision_proto::{common, registry as pb};
use tonic::Status;

use crate::{
    domain::ExpertId,
    error::Error,
    store::{CorruptRow, StoreError},
};

/// `documents.content_encryption` of a file encrypted with the personal-data key.
const ENCRYPTED: &str = "pd1";
/// `documents.content_encryption` of a file stored as uploaded (before migration 0008).
const PLAIN: &str = "";

/// The most an evidence file may hold (UploadDocumentRequest).
pub const MAX_DOCUMENT_BYTES: usize = 10 * 1024 * 1024;
const MAX_FILE_NAME_CHARS: usize = 200;

/// A checked upload.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub expert_id: Option<ExpertId>,
    pub file_name: String,
    pub media_type: &'static str,
    pub content: Vec<u8>,
}

/// Whether `content` starts with the signature of `media_type`.
fn signature_matches(media_type: &str, content: &[u8]) -> bool {
    match media_type {
        "application/pdf" => content.starts_with(b"%PDF-"),
        "image/png" => content.starts_with(b"\x89PNG\r\n\x1a\n"),
        "image/jpeg" => content.starts_with(b"\xFF\xD8\xFF"),
        _ => false,
    }
}

pub fn new_document(req: pb::UploadDocumentRequest) -> Result<NewDocument, Status> {
    let mut v = FieldViolations::new();
    let expert_id = if req.expert_id.trim().is_empty() {
        None
    } else {
        let id = ExpertId::parse(req.expert_id.trim());
        if id.is_none() {
            v.add("expert_id", "is not an expert id");
        }
        id
    };
    let file_name = req.file_name.trim().to_owned();
    if file_name.is_empty() {
        v.add("file_name", "is required");
    } else if file_name.chars().count() > MAX_FILE_NAME_CHARS || file_name.contains(['/', '\\', '\0']) {
        v.add("file_name", format!("a plain file name of at most {MAX_FILE_NAME_CHARS} characters"));
    }
    let media_type = match req.media_type.trim().to_ascii_lowercase().as_str() {
        "application/pdf" => Some("application/pdf"),
        "image/jpeg" | "image/jpg" => Some("image/jpeg"),
        "image/png" => Some("image/png"),
        _ => {
            v.add("media_type", "must be application/pdf, image/jpeg or image/png");
            None
        }
    };
    if req.content.is_empty() {
        v.add("content", "is empty");
    } else if req.content.len() > MAX_DOCUMENT_BYTES {
        v.add("content", "is larger than 10 MiB (10,485,760 bytes)");
    } else if let Some(media) = media_type
        && !signature_matches(media, &req.content)
    {
        v.add("content", format!("is not a {media} file"));
    }
    v.check()?;
    Ok(NewDocument { expert_id, file_name, media_type: media_type.expect("checked above"), content: req.content })
}

/// Stores a file inside `tx` with its audit entry (the reference, never the content).
pub async fn upload(
    tx: &mut Transaction<'static, Any>,
    db: &Db,
    clock: &SharedClock,
    key: &PersonalDataKey,
    caller: &Caller,
    command: &Command,
    new: NewDocument,
) -> Result<common::DocumentRef, Status> {
    match (&new.expert_id, caller.role) {
        (None, Role::Expert) => {
            return Err(supervision_kit::error::invalid_field("expert_id", "an expert uploads for their own record"));
        }
        (Some(id), Role::Expert) if caller.expert_id.as_deref() != Some(id.as_str()) => {
            return Err(Error::ExpertNotFound(id.to_string()).into());
        }
        (Some(id), _) => {
            if crate::store::appointments::expert_status(tx, id).await.map_err(Error::from)?.is_none() {
                return Err(Error::ExpertNotFound(id.to_string()).into());
            }
        }
        (None, _) => {}
    }
    let reference = common::DocumentRef {
        id: supervision_kit::vocab::new_prefixed_id("doc_"),
        file_name: new.file_name.clone(),
        media_type: new.media_type.to_owned(),
        size_bytes: i64::try_from(new.content.len()).unwrap_or(i64::MAX),
        sha256: hex::encode(Sha256::digest(&new.content)),
    };
    let expert_id = new.expert_id.as_ref().map(ToString::to_string).unwrap_or_default();
    let sealed = key.encrypt_bytes(&new.content, reference.id.as_bytes());
    sqlx::query(
        "INSERT INTO documents (id, expert_id, file_name, media_type, size_bytes, sha256, content, \
         content_encryption, uploaded_by_subject, uploaded_by_role, uploaded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&reference.id)
    .bind(&expert_id)
    .bind(&reference.file_name)
    .bind(&reference.media_type)
    .bind(reference.size_bytes)
    .bind(&reference.sha256)
    .bind(sealed)
    .bind(ENCRYPTED)
    .bind(&caller.subject)
    .bind(caller.role.code())
    .bind(format_instant(clock.now()))
    .execute(&mut **tx)
    .await
    .map_err(Error::from)?;
    let change = Change {
        method: command.method,
        request_id: &command.request_id,
        entity_type: "document",
        entity_id: &reference.id,
        action: "upload",
        before: None,
        after: Some(serde_json::json!({
            "expert_id": expert_id,
            "media_type": reference.media_type,
            "size_bytes": reference.size_bytes,
            "sha256": reference.sha256,
        })),
    };
    audit::append(tx, db.backend(), clock, caller, change).await.map_err(Error::from)?;
    Ok(reference)
}

/// A stored file, for a caller allowed to read it: the staff roles of GetDocument get every file,
/// an EXPERT their own (or one they uploaded before their record was linked).
pub async fn get(
    db: &Db,
    key: &PersonalDataKey,
    caller: &Caller,
    raw_id: &str,
) -> Result<pb::GetDocumentResponse, Status> {
    let id = raw_id.trim();
    if !supervision_kit::vocab::is_prefixed_id(id, "doc_") {
        return Err(supervision_kit::error::invalid_field("id", "is not a document id"));
    }
    let row = sqlx::query(
        "SELECT id, expert_id, file_name, media_type, size_bytes, sha256, content, content_encryption, \
         uploaded_by_subject FROM documents WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await
    .map_err(Error::from)?;
    let not_found = || Status::not_found(format!("document {id} not found"));
    let Some(row) = row else { return Err(not_found()) };
    let field = |e: sqlx::Error| Status::from(Error::from(e));
    let expert_id: String = row.try_get("expert_id").map_err(field)?;
    let uploader: String = row.try_get("uploaded_by_subject").map_err(field)?;
    let allowed = match caller.role {
        Role::CityAdmin | Role::CityReviewer | Role::Auditor => true,
        Role::Expert => {
            (!expert_id.is_empty() && caller.expert_id.as_deref() == Some(expert_id.as_str()))
                || (expert_id.is_empty() && uploader == caller.subject)
        }
        _ => false,
    };
    if !allowed {
        return Err(not_found());
    }
    let document = common::DocumentRef {
        id: row.try_get("id").map_err(field)?,
        file_name: row.try_get("file_name").map_err(field)?,
        media_type: row.try_get("media_type").map_err(field)?,
        size_bytes: row.try_get("size_bytes").map_err(field)?,
        sha256: row.try_get("sha256").map_err(field)?,
    };
    let stored: Vec<u8> = row.try_get("content").map_err(field)?;
    let encryption: String = row.try_get("content_encryption").map_err(field)?;
    let content = open(key, &document, &encryption, stored).map_err(|e| Status::from(Error::from(e)))?;
    Ok(pb::GetDocumentResponse { document: Some(document), expert_id, content })
}

/// The plain file of a stored row: decrypted when it was stored encrypted, as stored otherwise,
/// and in both cases only if it has the row's size and SHA-256.
fn open(
    key: &PersonalDataKey,
    document: &common::DocumentRef,
    encryption: &str,
    stored: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    let corrupt = |problem: String| CorruptRow { table: "documents", id: document.id.clone(), problem };
    let content = match encryption {
        ENCRYPTED => key.decrypt_bytes(&stored, document.id.as_bytes())?,
        PLAIN => stored,
        other => return Err(corrupt(format!("unknown content_encryption {other:?}")).into()),
    };
    if i64::try_from(content.len()).ok() != Some(document.size_bytes)
        || hex::encode(Sha256::digest(&content)) != document.sha256
    {
        return Err(corrupt("the content does not match its size and SHA-256".into()).into());
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(media_type: &str, content: &[u8]) -> pb::UploadDocumentRequest {
        pb::UploadDocumentRequest {
            request_id: "r".into(),
            expert_id: String::new(),
            file_name: "证书.pdf".into(),
            media_type: media_type.into(),
            content: content.to_vec(),
        }
    }

    fn fields(status: &Status) -> Vec<String> {
        use tonic_types::StatusExt;
        status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.iter().map(|f| f.field.clone()).collect())
            .unwrap_or_default()
    }

    fn stored_ref(id: &str, content: &[u8]) -> common::DocumentRef {
        common::DocumentRef {
            id: id.into(),
            file_name: "证书.pdf".into(),
            media_type: "application/pdf".into(),
            size_bytes: content.len() as i64,
            sha256: hex::encode(Sha256::digest(content)),
        }
    }

    #[test]
    fn a_stored_file_opens_only_whole_encrypted_or_from_before_encryption() {
        let key = PersonalDataKey::from_hex(&PersonalDataKey::generate_hex()).unwrap();
        let plain = b"%PDF-1.7 scan of an identity card".to_vec();
        let document = stored_ref("doc_1", &plain);
        let sealed = key.encrypt_bytes(&plain, b"doc_1");
        assert_eq!(open(&key, &document, ENCRYPTED, sealed.clone()).unwrap(), plain);
        assert_eq!(open(&key, &document, PLAIN, plain.clone()).unwrap(), plain, "a row from before 0008");
        let moved = stored_ref("doc_2", &plain);
        assert!(matches!(open(&key, &moved, ENCRYPTED, sealed.clone()), Err(StoreError::Personal(_))), "another row");
        let mut altered = plain.clone();
        altered[0] = b'#';
        assert!(matches!(open(&key, &document, PLAIN, altered), Err(StoreError::Corrupt(_))), "SHA-256 checked");
        assert!(matches!(open(&key, &document, "pd9", sealed), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_file_is_what_its_media_type_says_and_at_most_ten_mib() {
        assert!(new_document(upload("application/pdf", b"%PDF-1.7 ...")).is_ok());
        assert!(new_document(upload("IMAGE/JPG", b"\xFF\xD8\xFF\xE0 ...")).is_ok());
        assert_eq!(fields(&new_document(upload("application/pdf", b"\x89PNG\r\n\x1a\n")).unwrap_err()), ["content"]);
        assert_eq!(fields(&new_document(upload("text/plain", b"hello")).unwrap_err()), ["media_type"]);
        assert_eq!(fields(&new_document(upload("image/png", b"")).unwrap_err()), ["content"]);
        let mut big = b"%PDF-".to_vec();
        big.resize(MAX_DOCUMENT_BYTES + 1, b' ');
        assert_eq!(fields(&new_document(upload("application/pdf", &big)).unwrap_err()), ["content"]);
        let mut named = upload("application/pdf", b"%PDF-1.7");
        named.file_name = "../etc/passwd".into();
        assert_eq!(fields(&new_document(named).unwrap_err()), ["file_name"]);
    }
}
