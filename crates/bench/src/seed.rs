//! Seeding experts fast through the registry's own bulk path: ImportExperts with CSV files of
//! up to 10,000 rows. Each row is stored by the very use cases CreateExpert and AppointExpert run
//! (personal data encrypted with the deployment key and blind-indexed, change history, the audit
//! entry of each row, the existing term as an appointment), so the rows are exactly the rows the
//! service writes; only the round trips of one RPC per expert are saved.

use std::time::{Duration, Instant};

use supervision_proto::{
    common::FileFormat,
    registry::{ImportExpertsRequest, import_experts_response::Event, registry_service_client::RegistryServiceClient},
};
use supervision_registry::{sheets, transfer};

use testkit::AuthedChannel;

/// The day the seeded experts' first terms were decided (and start): their two-year terms cover
/// every session date the scenarios use (June to December 2026).
pub const DECIDED: &str = "2026-05-06";

/// Rows per ImportExperts call.
pub const FILE_ROWS: u32 = 10_000;

const COUNTIES: [&str; 7] = ["440703", "440704", "440705", "440781", "440783", "440784", "440785"];

/// GB 11643 resident identity number for person `n` (unique for n < 3,650,000): a birth date
/// from 1960 on, the person's sequence within that date, and the ISO 7064 MOD 11-2 check.
pub fn resident_id(n: u32) -> String {
    let birth =
        chrono::NaiveDate::from_ymd_opt(1960, 1, 1).expect("a date") + chrono::Duration::days(i64::from(n / 1000));
    let body = format!("440705{}{:03}", birth.format("%Y%m%d"), n % 1000);
    let check = gb11643_check(&body);
    format!("{body}{check}")
}

/// The ISO 7064 MOD 11-2 check character of a 17-digit identity number body.
fn gb11643_check(body: &str) -> char {
    let mut sum = 0u32;
    for (i, b) in body.bytes().enumerate() {
        // The weight of position i of 18: 2^(17-i) mod 11.
        let weight = (1u32 << (17 - i)) % 11;
        sum += u32::from(b - b'0') * weight;
    }
    ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize]
}

/// GB 32100 unified social credit code of employer `n`: 17 characters and the MOD 31 check.
pub fn credit_code(n: u32) -> String {
    let body = format!("91440705MA{:07}", n);
    let check = gb32100_check(&body);
    format!("{body}{check}")
}

/// The MOD 31 check character of a 17-character credit code body.
fn gb32100_check(body: &str) -> char {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let mut sum = 0usize;
    let mut weight = 1usize;
    for b in body.bytes() {
        let value = ALPHABET.iter().position(|c| *c == b).expect("a code character");
        sum += value * weight;
        weight = weight * 3 % 31;
    }
    ALPHABET[(31 - sum % 31) % 31] as char
}

/// Expert `n`'s row, in `transfer::EXPERT_COLUMNS` order: appointed on [`DECIDED`] to a first
/// term, employed by one of 997 organisations, with every personal field the registry encrypts.
fn row(n: u32) -> Vec<String> {
    transfer::EXPERT_COLUMNS
        .iter()
        .map(|column| match *column {
            "kind" => "INDIVIDUAL".to_owned(),
            "name" => format!("压测专家{n}"),
            "id_type" => "RESIDENT_ID_CARD".to_owned(),
            "id_number" => resident_id(n),
            "county" => COUNTIES[n as usize % COUNTIES.len()].to_owned(),
            "mobile" => format!("137{:08}", n),
            "email" => format!("bench{n}@example.org"),
            "address" => format!("江门市压测路{n}号"),
            "bank_holder" => format!("压测专家{n}"),
            "bank_name" => "中国农业银行".to_owned(),
            "bank_branch" => "江门分行".to_owned(),
            "bank_account" => format!("62284800{:011}", n),
            "employer_name" => format!("江门压测单位{}", n % 997),
            "employer_credit_code" => credit_code(n % 997),
            "employer_post" => "工程师".to_owned(),
            "categories" => {
                if n.is_multiple_of(2) { "TECHNICIAN" } else { "ASSESSOR_OR_QUALITY_SUPERVISOR" }.to_owned()
            }
            "category_evidence" => "职业资格证书".to_owned(),
            "specialties" => "4-07-05-01".to_owned(),
            "civil_servant_status" => "NONE".to_owned(),
            "certificate_number" => format!("JMBENCH-{:06}", n),
            "decision_date" | "term_start" => DECIDED.to_owned(),
            "term_number" => "1".to_owned(),
            "trained" => if n.is_multiple_of(4) { "no" } else { "yes" }.to_owned(),
            _ => String::new(),
        })
        .collect()
}

/// Imports experts `from..to` through `admin` (a CITY_ADMIN channel to the registry), `FILE_ROWS` per call; returns the time taken.
pub async fn experts(admin: AuthedChannel, from: u32, to: u32) -> anyhow::Result<Duration> {
    let mut client =
        RegistryServiceClient::new(admin).max_decoding_message_size(64 << 20).max_encoding_message_size(64 << 20);
    let started = Instant::now();
    let mut first = from;
    while first < to {
        let last = (first + FILE_ROWS).min(to);
        let rows: Vec<Vec<String>> = (first..last).map(row).collect();
        let content = sheets::write(FileFormat::CsvUtf8, transfer::EXPERT_COLUMNS, &rows)
            .map_err(|s| anyhow::anyhow!("writing the file: {s}"))?;
        let request = ImportExpertsRequest {
            request_id: format!("bench-import-{first}-{last}"),
            format: FileFormat::CsvUtf8 as i32,
            content,
            validate_only: false,
        };
        let mut stream = client.import_experts(request).await?.into_inner();
        let mut result = None;
        while let Some(message) = stream.message().await? {
            if let Some(Event::Result(r)) = message.event {
                result = Some(r);
            }
        }
        let result = result.ok_or_else(|| anyhow::anyhow!("the import ended without a result"))?;
        if !result.committed || u32::try_from(result.rows_imported).ok() != Some(last - first) {
            anyhow::bail!(
                "import of rows {first}..{last} refused: {} imported, first errors {:?}",
                result.rows_imported,
                &result.errors[..result.errors.len().min(3)]
            );
        }
        first = last;
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_characters_match_the_standards_examples() {
        // GB 11643-1999's own example, and a credit code the registry accepts (README).
        assert_eq!(gb11643_check("11010519491231002"), 'X');
        assert_eq!(gb32100_check("91350100M000100Y4"), '3');
        assert_eq!(resident_id(123_456).len(), 18);
        assert_ne!(resident_id(1), resident_id(1001));
        assert_eq!(credit_code(5).len(), 18);
    }
}
