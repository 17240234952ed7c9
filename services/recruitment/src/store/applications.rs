//! Applications and materials: personal data written only encrypted, the identity number with
//! its blind index (the registry's scheme, the same deployment key).
//!
//! A material's content (often a scan of an identity card or a certificate) is encrypted too
//! (migration 0006): AES-256-GCM with the personal-data key, the material id authenticated with
//! it, `content_encryption` 'pd1'. Rows stored before that migration hold the file as uploaded
//! ('') and still read. The size and SHA-256 are of the plain file and are checked on every read,
//! so a file that does not come back whole is never served.

use chrono::NaiveDate;
use prost::Message;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, AnyExecutor, Row, any::AnyRow};
use supervision_kit::{
    Page,
    auth::Actor,
    identity::{DocumentType, IdentityDocument},
    personal::PersonalDataKey,
    storage::{format_instant, parse_instant},
    vocab::OnBehalf,
};
use supervision_proto::recruitment as pb;

use super::StoreError;
use crate::domain::{
    Application, ApplicationFilter, ApplicationId, ApplicationStatus, Attestation, BankAccount, CallId, Conclusion,
    Contact, Material, MaterialId, Outcome, Profile, ReviewInput, ReviewItem, ReviewItemId, ReviewTarget, Verdict,
};

macro_rules! application_columns {
    () => {
        "id, call_id, owner_subject, name, profile_pb, identity_type, identity_country, identity_number_enc, \
         identity_blind_index, contact_enc, bank_account_enc, replaces_expert_id, status, attestation_json, \
         on_behalf_json, submission_count, submitted_at, created_by_subject, created_by_role, created_by_bureau, \
         revision, created_at, updated_at, submitted_by_subject, conclusion_json"
    };
}

/// `materials.content_encryption` of a file encrypted with the personal-data key.
const ENCRYPTED: &str = "pd1";
/// `materials.content_encryption` of a file stored as uploaded (before migration 0006).
const PLAIN: &str = "";

macro_rules! material_columns {
    () => {
        "id, application_id, kind, category, condition_code, file_name, media_type, size_bytes, sha256, description, \
         uploaded_by_subject, uploaded_by_role, uploaded_by_bureau, uploaded_at, removed"
    };
}

/// The blind index of a document: equal documents give equal indexes, only with the key.
pub fn identity_index(key: &PersonalDataKey, doc: &IdentityDocument) -> String {
    key.blind_index(&doc.index_input())
}

fn on_behalf_json(o: Option<&OnBehalf>) -> String {
    o.map_or_else(String::new, |o| {
        serde_json::json!({ "channel": o.channel, "received_at": format_instant(o.received_at), "note": o.note })
            .to_string()
    })
}

fn on_behalf_from_json(v: &serde_json::Value) -> Option<OnBehalf> {
    Some(OnBehalf {
        channel: v.get("channel")?.as_str()?.to_owned(),
        received_at: parse_instant(v.get("received_at")?.as_str()?).ok()?,
        note: v.get("note")?.as_str()?.to_owned(),
    })
}

fn attestation_json(a: Option<&Attestation>) -> String {
    a.map_or_else(String::new, |a| {
        serde_json::json!({
            "text_version": a.text_version,
            "text": a.text,
            "attested_at": format_instant(a.attested_at),
            "on_behalf": a.on_behalf.as_ref().map(|o| serde_json::from_str::<serde_json::Value>(&on_behalf_json(Some(o))).unwrap_or_default()),
        })
        .to_string()
    })
}

fn attestation_from_json(v: &serde_json::Value) -> Option<Attestation> {
    Some(Attestation {
        text_version: v.get("text_version")?.as_str()?.to_owned(),
        text: v.get("text")?.as_str()?.to_owned(),
        attested_at: parse_instant(v.get("attested_at")?.as_str()?).ok()?,
        on_behalf: v.get("on_behalf").and_then(on_behalf_from_json),
    })
}

fn encrypt_json<T: serde::Serialize>(key: &PersonalDataKey, value: &T) -> String {
    key.encrypt(&serde_json::to_string(value).unwrap_or_default())
}

pub async fn insert_application(
    db: impl AnyExecutor<'_>,
    key: &PersonalDataKey,
    a: &Application,
) -> Result<(), sqlx::Error> {
    let p = &a.profile;
    sqlx::query(concat!(
        "INSERT INTO applications (",
        application_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
         $22, $23, $24, $25)"
    ))
    .bind(a.id.as_str())
    .bind(a.call_id.as_str())
    .bind(&a.owner_subject)
    .bind(&p.name)
    .bind(p.rest.encode_to_vec())
    .bind(p.identity.kind.code())
    .bind(&p.identity.issuing_country)
    .bind(key.encrypt(p.identity.number()))
    .bind(identity_index(key, &p.identity))
    .bind(encrypt_json(key, &p.contact))
    .bind(p.bank_account.as_ref().map(|b| encrypt_json(key, b)).unwrap_or_default())
    .bind(&a.replaces_expert_id)
    .bind(a.status.code())
    .bind(attestation_json(a.attestation.as_ref()))
    .bind(on_behalf_json(a.on_behalf.as_ref()))
    .bind(a.submission_count)
    .bind(a.submitted_at.map(format_instant).unwrap_or_default())
    .bind(&a.created_by.subject)
    .bind(&a.created_by.role)
    .bind(a.created_by.bureau.clone().unwrap_or_default())
    .bind(a.revision)
    .bind(format_instant(a.created_at))
    .bind(format_instant(a.updated_at))
    .bind(&a.submitted_by_subject)
    .bind(conclusion_json(a.conclusion.as_ref()))
    .execute(db)
    .await?;
    Ok(())
}

/// Rewrites everything that can change: the profile, the state, the commitment, the revision.
pub async fn update_application(
    db: impl AnyExecutor<'_>,
    key: &PersonalDataKey,
    a: &Application,
) -> Result<(), sqlx::Error> {
    let p = &a.profile;
    sqlx::query(
        "UPDATE applications SET name = $1, profile_pb = $2, identity_type = $3, identity_country = $4, \
         identity_number_enc = $5, identity_blind_index = $6, contact_enc = $7, bank_account_enc = $8, status = $9, \
         attestation_json = $10, submission_count = $11, submitted_at = $12, revision = $13, updated_at = $14, \
         submitted_by_subject = $15, conclusion_json = $16 WHERE id = $17",
    )
    .bind(&p.name)
    .bind(p.rest.encode_to_vec())
    .bind(p.identity.kind.code())
    .bind(&p.identity.issuing_country)
    .bind(key.encrypt(p.identity.number()))
    .bind(identity_index(key, &p.identity))
    .bind(encrypt_json(key, &p.contact))
    .bind(p.bank_account.as_ref().map(|b| encrypt_json(key, b)).unwrap_or_default())
    .bind(a.status.code())
    .bind(attestation_json(a.attestation.as_ref()))
    .bind(a.submission_count)
    .bind(a.submitted_at.map(format_instant).unwrap_or_default())
    .bind(a.revision)
    .bind(format_instant(a.updated_at))
    .bind(&a.submitted_by_subject)
    .bind(conclusion_json(a.conclusion.as_ref()))
    .bind(a.id.as_str())
    .execute(db)
    .await?;
    Ok(())
}

pub async fn get_application(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    id: &ApplicationId,
) -> Result<Option<Application>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", application_columns!(), " FROM applications WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut application = application_from_row(&row, key)?;
    application.materials = materials_of(conn, id).await?;
    application.review_items = review_items_of(conn, id).await?;
    Ok(Some(application))
}

/// One page, oldest first (ids are UUIDv7: ascending id is ascending creation).
pub async fn list_applications(
    conn: &mut AnyConnection,
    key: &PersonalDataKey,
    filter: &ApplicationFilter,
    page: &Page,
) -> Result<Vec<Application>, StoreError> {
    let name_pattern = filter.name_contains.as_deref().map(like_pattern).unwrap_or_default();
    let rows = sqlx::query(concat!(
        "SELECT ",
        application_columns!(),
        " FROM applications WHERE ($1 = '' OR id > $1) AND ($2 = '' OR call_id = $2) AND ($3 = '' OR status = $3) \
         AND ($4 = '' OR name LIKE $4 ESCAPE '\\') AND ($5 = '' OR identity_blind_index = $5) \
         AND ($6 = '' OR owner_subject = $6) ORDER BY id LIMIT $7"
    ))
    .bind(page.after.as_deref().unwrap_or_default())
    .bind(filter.call_id.as_deref().unwrap_or_default())
    .bind(filter.status.map(ApplicationStatus::code).unwrap_or_default())
    .bind(name_pattern)
    .bind(filter.identity_index.as_deref().unwrap_or_default())
    .bind(filter.owner_subject.as_deref().unwrap_or_default())
    .bind(i64::from(page.size))
    .fetch_all(&mut *conn)
    .await?;
    let mut items = rows.iter().map(|r| application_from_row(r, key)).collect::<Result<Vec<_>, _>>()?;
    for a in &mut items {
        a.materials = materials_of(conn, &a.id).await?;
        a.review_items = review_items_of(conn, &a.id).await?;
    }
    Ok(items)
}

/// `%text%` with LIKE's wildcards escaped, for a case-sensitive substring match.
fn like_pattern(text: &str) -> String {
    let escaped: String =
        text.chars().flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] }).collect();
    format!("%{escaped}%")
}

fn application_from_row(row: &AnyRow, key: &PersonalDataKey) -> Result<Application, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |problem: String| StoreError::Corrupt { id: id.clone(), problem };
    let personal = |source| StoreError::PersonalData { id: id.clone(), source };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let instant =
        |col: &str| -> Result<_, StoreError> { parse_instant(&text(col)?).map_err(|e| bad(format!("{col}: {e}"))) };
    let optional_json = |col: &str| -> Result<Option<serde_json::Value>, StoreError> {
        let t = text(col)?;
        if t.is_empty() { Ok(None) } else { serde_json::from_str(&t).map(Some).map_err(|e| bad(format!("{col}: {e}"))) }
    };

    let kind_code = text("identity_type")?;
    let kind = DocumentType::from_code(&kind_code).ok_or_else(|| bad(format!("identity_type {kind_code}")))?;
    let number = key.decrypt(&text("identity_number_enc")?).map_err(personal)?;
    // Stored documents were valid when written; the far date only lifts the "born by today" check.
    let identity = IdentityDocument::parse(kind, &number, &text("identity_country")?, NaiveDate::MAX)
        .map_err(|e| bad(format!("identity: {e}")))?;
    let contact: Contact = serde_json::from_str(&key.decrypt(&text("contact_enc")?).map_err(personal)?)
        .map_err(|e| bad(format!("contact: {e}")))?;
    let bank_enc = text("bank_account_enc")?;
    let bank_account: Option<BankAccount> = if bank_enc.is_empty() {
        None
    } else {
        Some(
            serde_json::from_str(&key.decrypt(&bank_enc).map_err(personal)?)
                .map_err(|e| bad(format!("bank_account: {e}")))?,
        )
    };
    let rest_bytes: Vec<u8> = row.try_get("profile_pb")?;
    let rest = pb::ApplicantProfile::decode(rest_bytes.as_slice()).map_err(|e| bad(format!("profile_pb: {e}")))?;
    let status = text("status")?;
    let submitted = text("submitted_at")?;
    let bureau = text("created_by_bureau")?;
    Ok(Application {
        id: ApplicationId::parse(&id).ok_or_else(|| bad("id".into()))?,
        call_id: CallId::parse(&text("call_id")?).ok_or_else(|| bad("call_id".into()))?,
        owner_subject: text("owner_subject")?,
        profile: Profile { name: text("name")?, identity, contact, bank_account, rest },
        replaces_expert_id: text("replaces_expert_id")?,
        status: ApplicationStatus::from_code(&status).ok_or_else(|| bad(format!("status {status}")))?,
        attestation: optional_json("attestation_json")?
            .map(|v| attestation_from_json(&v).ok_or_else(|| bad("attestation_json".into())))
            .transpose()?,
        on_behalf: optional_json("on_behalf_json")?
            .map(|v| on_behalf_from_json(&v).ok_or_else(|| bad("on_behalf_json".into())))
            .transpose()?,
        submission_count: row.try_get::<i32, _>("submission_count")?,
        submitted_at: if submitted.is_empty() { None } else { Some(instant("submitted_at")?) },
        created_by: Actor {
            subject: text("created_by_subject")?,
            role: text("created_by_role")?,
            bureau: (!bureau.is_empty()).then_some(bureau),
        },
        revision: row.try_get::<i64, _>("revision")?,
        created_at: instant("created_at")?,
        updated_at: instant("updated_at")?,
        materials: Vec::new(),
        submitted_by_subject: text("submitted_by_subject")?,
        review_items: Vec::new(),
        conclusion: optional_json("conclusion_json")?
            .map(|v| conclusion_from_json(&v).ok_or_else(|| bad("conclusion_json".into())))
            .transpose()?,
    })
}

fn actor_json(a: &Actor) -> serde_json::Value {
    serde_json::json!({ "subject": a.subject, "role": a.role, "bureau": a.bureau })
}

fn actor_from_json(v: &serde_json::Value) -> Option<Actor> {
    Some(Actor {
        subject: v.get("subject")?.as_str()?.to_owned(),
        role: v.get("role")?.as_str()?.to_owned(),
        bureau: v.get("bureau").and_then(|b| b.as_str()).map(str::to_owned),
    })
}

fn conclusion_json(c: Option<&Conclusion>) -> String {
    c.map_or_else(String::new, |c| {
        serde_json::json!({
            "outcome": c.outcome.code(),
            "reason": c.reason,
            "reviewer": actor_json(&c.reviewer),
            "concluded_at": format_instant(c.concluded_at),
        })
        .to_string()
    })
}

fn conclusion_from_json(v: &serde_json::Value) -> Option<Conclusion> {
    Some(Conclusion {
        outcome: Outcome::from_code(v.get("outcome")?.as_str()?)?,
        reason: v.get("reason")?.as_str()?.to_owned(),
        reviewer: actor_from_json(v.get("reviewer")?)?,
        concluded_at: parse_instant(v.get("concluded_at")?.as_str()?).ok()?,
    })
}

pub async fn insert_review_item(
    db: impl AnyExecutor<'_>,
    application: &ApplicationId,
    item: &ReviewItem,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO review_items (id, application_id, target_kind, target_value, verdict, reason, reviewer_subject, \
         reviewer_role, reviewer_bureau, reviewed_at, submission_number) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(item.id.as_str())
    .bind(application.as_str())
    .bind(item.input.target.kind())
    .bind(item.input.target.value())
    .bind(item.input.verdict.code())
    .bind(&item.input.reason)
    .bind(&item.reviewer.subject)
    .bind(&item.reviewer.role)
    .bind(item.reviewer.bureau.clone().unwrap_or_default())
    .bind(format_instant(item.reviewed_at))
    .bind(item.submission_number)
    .execute(db)
    .await?;
    Ok(())
}

async fn review_items_of(conn: &mut AnyConnection, id: &ApplicationId) -> Result<Vec<ReviewItem>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, target_kind, target_value, verdict, reason, reviewer_subject, reviewer_role, reviewer_bureau, \
         reviewed_at, submission_number FROM review_items WHERE application_id = $1 ORDER BY id",
    )
    .bind(id.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let item_id: String = row.try_get("id")?;
            let bad = |problem: String| StoreError::Corrupt { id: item_id.clone(), problem };
            let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
            let bureau = text("reviewer_bureau")?;
            Ok(ReviewItem {
                id: ReviewItemId::parse(&item_id).ok_or_else(|| bad("id".into()))?,
                input: ReviewInput {
                    target: ReviewTarget::from_parts(&text("target_kind")?, &text("target_value")?)
                        .ok_or_else(|| bad("target".into()))?,
                    verdict: Verdict::from_code(&text("verdict")?).ok_or_else(|| bad("verdict".into()))?,
                    reason: text("reason")?,
                },
                reviewer: Actor {
                    subject: text("reviewer_subject")?,
                    role: text("reviewer_role")?,
                    bureau: (!bureau.is_empty()).then_some(bureau),
                },
                reviewed_at: parse_instant(&text("reviewed_at")?).map_err(|e| bad(format!("reviewed_at: {e}")))?,
                submission_number: row.try_get::<i32, _>("submission_number")?,
            })
        })
        .collect()
}

/// Stores a material with its content encrypted (the material id authenticated with it).
pub async fn insert_material(
    db: impl AnyExecutor<'_>,
    key: &PersonalDataKey,
    m: &Material,
    content: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO materials (",
        material_columns!(),
        ", content, content_encryption) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
         $16, $17)"
    ))
    .bind(m.id.as_str())
    .bind(m.application_id.as_str())
    .bind(&m.kind)
    .bind(&m.category)
    .bind(&m.condition)
    .bind(&m.file_name)
    .bind(&m.media_type)
    .bind(m.size_bytes)
    .bind(&m.sha256)
    .bind(&m.description)
    .bind(&m.uploaded_by.subject)
    .bind(&m.uploaded_by.role)
    .bind(m.uploaded_by.bureau.clone().unwrap_or_default())
    .bind(format_instant(m.uploaded_at))
    .bind(i32::from(m.removed))
    .bind(key.encrypt_bytes(content, m.id.as_str().as_bytes()))
    .bind(ENCRYPTED)
    .execute(db)
    .await?;
    Ok(())
}

/// An application's materials (not their content), oldest first.
pub async fn materials_of(conn: &mut AnyConnection, id: &ApplicationId) -> Result<Vec<Material>, StoreError> {
    let rows =
        sqlx::query(concat!("SELECT ", material_columns!(), " FROM materials WHERE application_id = $1 ORDER BY id"))
            .bind(id.as_str())
            .fetch_all(&mut *conn)
            .await?;
    rows.iter().map(material_from_row).collect()
}

fn material_from_row(row: &AnyRow) -> Result<Material, StoreError> {
    let id: String = row.try_get("id")?;
    let bad = |problem: String| StoreError::Corrupt { id: id.clone(), problem };
    let text = |col: &str| -> Result<String, StoreError> { Ok(row.try_get::<String, _>(col)?) };
    let bureau = text("uploaded_by_bureau")?;
    Ok(Material {
        id: MaterialId::parse(&id).ok_or_else(|| bad("id".into()))?,
        application_id: ApplicationId::parse(&text("application_id")?).ok_or_else(|| bad("application_id".into()))?,
        kind: text("kind")?,
        category: text("category")?,
        condition: text("condition_code")?,
        file_name: text("file_name")?,
        media_type: text("media_type")?,
        size_bytes: row.try_get::<i64, _>("size_bytes")?,
        sha256: text("sha256")?,
        description: text("description")?,
        uploaded_by: Actor {
            subject: text("uploaded_by_subject")?,
            role: text("uploaded_by_role")?,
            bureau: (!bureau.is_empty()).then_some(bureau),
        },
        uploaded_at: parse_instant(&text("uploaded_at")?).map_err(|e| bad(format!("uploaded_at: {e}")))?,
        removed: row.try_get::<i32, _>("removed")? != 0,
    })
}

/// A material (not its content).
pub async fn material(db: impl AnyExecutor<'_>, id: &MaterialId) -> Result<Option<Material>, StoreError> {
    let row = sqlx::query(concat!("SELECT ", material_columns!(), " FROM materials WHERE id = $1"))
        .bind(id.as_str())
        .fetch_optional(db)
        .await?;
    row.as_ref().map(material_from_row).transpose()
}

/// The plain content of material `m`, only if it comes back whole (see `open_material`).
pub async fn material_content(
    db: impl AnyExecutor<'_>,
    key: &PersonalDataKey,
    m: &Material,
) -> Result<Vec<u8>, StoreError> {
    let row = sqlx::query("SELECT content, content_encryption FROM materials WHERE id = $1")
        .bind(m.id.as_str())
        .fetch_optional(db)
        .await?
        .ok_or_else(|| StoreError::Corrupt { id: m.id.to_string(), problem: "the row is gone".into() })?;
    open_material(key, m, &row.try_get::<String, _>("content_encryption")?, row.try_get::<Vec<u8>, _>("content")?)
}

/// The plain file of a stored material: decrypted when it was stored encrypted, as stored
/// otherwise, and in both cases only if it has the row's size and SHA-256. Ciphertext moved from
/// another row does not decrypt, since each is sealed with its own material id.
fn open_material(
    key: &PersonalDataKey,
    m: &Material,
    encryption: &str,
    stored: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    let corrupt = |problem: String| StoreError::Corrupt { id: m.id.to_string(), problem };
    let content = match encryption {
        ENCRYPTED => key
            .decrypt_bytes(&stored, m.id.as_str().as_bytes())
            .map_err(|source| StoreError::PersonalData { id: m.id.to_string(), source })?,
        PLAIN => stored,
        other => return Err(corrupt(format!("unknown content_encryption {other:?}"))),
    };
    if i64::try_from(content.len()).ok() != Some(m.size_bytes) || hex::encode(Sha256::digest(&content)) != m.sha256 {
        return Err(corrupt("the content does not match its size and SHA-256".into()));
    }
    Ok(content)
}

/// Marks a material removed; it stays for the record.
pub async fn mark_material_removed(db: impl AnyExecutor<'_>, id: &MaterialId) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE materials SET removed = 1 WHERE id = $1").bind(id.as_str()).execute(db).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored_material(content: &[u8]) -> Material {
        Material {
            id: MaterialId::generate(),
            application_id: ApplicationId::generate(),
            kind: "MATERIAL_KIND_IDENTITY_DOCUMENT".into(),
            category: String::new(),
            condition: String::new(),
            file_name: "身份证.pdf".into(),
            media_type: "application/pdf".into(),
            size_bytes: content.len() as i64,
            sha256: hex::encode(Sha256::digest(content)),
            description: String::new(),
            uploaded_by: Actor { subject: "applicant-li".into(), role: "APPLICANT".into(), bureau: None },
            uploaded_at: chrono::Utc::now(),
            removed: false,
        }
    }

    #[test]
    fn a_material_opens_only_whole_encrypted_or_from_before_encryption() {
        let key = PersonalDataKey::from_hex(&PersonalDataKey::generate_hex()).unwrap();
        let plain = b"%PDF-1.7 scan of 440703198506150029".to_vec();
        let material = stored_material(&plain);
        let sealed = key.encrypt_bytes(&plain, material.id.as_str().as_bytes());
        assert_eq!(open_material(&key, &material, ENCRYPTED, sealed.clone()).unwrap(), plain);
        assert_eq!(open_material(&key, &material, PLAIN, plain.clone()).unwrap(), plain, "a row from before 0006");

        let moved = stored_material(&plain);
        let err = open_material(&key, &moved, ENCRYPTED, sealed.clone()).unwrap_err();
        assert!(matches!(err, StoreError::PersonalData { .. }), "another row: {err}");
        let other_key = PersonalDataKey::from_hex(&PersonalDataKey::generate_hex()).unwrap();
        let err = open_material(&other_key, &material, ENCRYPTED, sealed.clone()).unwrap_err();
        assert!(matches!(err, StoreError::PersonalData { .. }), "another key: {err}");

        let mut altered = plain.clone();
        altered[0] = b'#';
        let err = open_material(&key, &material, PLAIN, altered).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "SHA-256 checked: {err}");
        let mut longer = plain.clone();
        longer.push(b' ');
        let mut resized = material.clone();
        resized.sha256 = hex::encode(Sha256::digest(&longer));
        let err = open_material(&key, &resized, PLAIN, longer).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "size checked: {err}");
        let err = open_material(&key, &material, ENCRYPTED, plain.clone()).unwrap_err();
        assert!(matches!(err, StoreError::PersonalData { .. }), "a plain file marked encrypted: {err}");
        assert!(matches!(open_material(&key, &material, "pd9", sealed), Err(StoreError::Corrupt { .. })));
    }
}
