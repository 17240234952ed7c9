//! Load tooling for docs/import-export.md (run by `scripts/measure-registry-import.sh`):
//!
//! - `import_load file --first 0 --count 10000 --out experts.xlsx` writes a valid expert import
//!   file: identity numbers with their GB 11643 check characters, employers with valid GB 32100
//!   credit codes, a first term decided 200 days ago with certificate `JMSE-<year>-<n+1>`;
//! - `import_load pool --endpoint http://127.0.0.1:50051 --token T --institution ins_...`
//!   streams the draw pool for that institution today and prints the count and the time.

use std::time::Instant;

use chrono::{Datelike, Duration, NaiveDate, Utc};
use supervision_proto::{
    common::{Date, FileFormat},
    registry::{StreamDrawPoolRequest, registry_service_client::RegistryServiceClient},
};
use supervision_registry::{sheets, transfer};

fn resident(n: u32) -> String {
    let birth = NaiveDate::from_ymd_opt(1960, 1, 1).expect("a date") + Duration::days(i64::from(n / 500));
    let body = format!("440703{}{:03}", birth.format("%Y%m%d"), n % 500);
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body.bytes().zip(WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let check = char::from(b"10X98765432"[(sum % 11) as usize]);
    format!("{body}{check}")
}

fn credit_code(n: u32) -> String {
    const CHARS: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    const WEIGHTS: [usize; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
    let body = format!("91440700MA{n:07}");
    let sum: usize = body.bytes().zip(WEIGHTS).map(|(b, w)| CHARS.iter().position(|c| *c == b).unwrap_or(0) * w).sum();
    format!("{body}{}", char::from(CHARS[(31 - sum % 31) % 31]))
}

fn today() -> NaiveDate {
    (Utc::now() + Duration::hours(8)).date_naive()
}

fn row(n: u32, decided: NaiveDate) -> Vec<String> {
    let counties = ["440703", "440704", "440705", "440781", "440783", "440784", "440785"];
    transfer::EXPERT_COLUMNS
        .iter()
        .map(|column| match *column {
            "kind" => "INDIVIDUAL".into(),
            "name" => format!("测试专家{n}"),
            "id_type" => "RESIDENT_ID_CARD".into(),
            "id_number" => resident(n),
            "county" => counties[n as usize % counties.len()].into(),
            "mobile" => format!("139{n:08}"),
            "email" => format!("expert{n}@example.com"),
            "address" => format!("江门市示例路{n}号"),
            "bank_holder" => format!("测试专家{n}"),
            "bank_name" => "中国工商银行".into(),
            "bank_branch" => "江门分行".into(),
            "bank_account" => format!("62220212{n:011}"),
            "employer_name" => format!("江门示例单位{}", n % 997),
            "employer_credit_code" => credit_code(n % 997),
            "employer_post" => "教师".into(),
            "categories" => "TECHNICIAN".into(),
            "category_evidence" => "技师证书".into(),
            "specialties" => "4-07-05-01".into(),
            "civil_servant_status" => "NONE".into(),
            "certificate_number" => format!("JMSE-{}-{:05}", decided.year(), n + 1),
            "decision_date" => decided.to_string(),
            "term_start" => decided.to_string(),
            "term_number" => "1".into(),
            "trained" => if n.is_multiple_of(2) { "yes" } else { "no" }.into(),
            _ => String::new(),
        })
        .collect()
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("file") => {
            let first: u32 = arg(&args, "--first").unwrap_or_else(|| "0".into()).parse()?;
            let count: u32 = arg(&args, "--count").unwrap_or_else(|| "10000".into()).parse()?;
            let out = arg(&args, "--out").ok_or_else(|| anyhow::anyhow!("--out FILE is required"))?;
            let format = if out.ends_with(".csv") { FileFormat::CsvGb18030 } else { FileFormat::Xlsx };
            let decided = today() - Duration::days(200);
            let rows: Vec<Vec<String>> = (first..first + count).map(|n| row(n, decided)).collect();
            let file = sheets::write(format, transfer::EXPERT_COLUMNS, &rows).map_err(|s| anyhow::anyhow!("{s}"))?;
            std::fs::write(&out, &file)?;
            println!("{out}: {count} experts, {} bytes", file.len());
        }
        Some("pool") => {
            let endpoint = arg(&args, "--endpoint").unwrap_or_else(|| "http://127.0.0.1:50051".into());
            let token = arg(&args, "--token").ok_or_else(|| anyhow::anyhow!("--token is required"))?;
            let institution =
                arg(&args, "--institution").ok_or_else(|| anyhow::anyhow!("--institution is required"))?;
            let channel = tonic::transport::Endpoint::from_shared(endpoint)?.connect().await?;
            let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse()?;
            let mut client = RegistryServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", bearer.clone());
                Ok(r)
            });
            let t = today();
            let started = Instant::now();
            let request = StreamDrawPoolRequest {
                institution_id: institution,
                session_dates: vec![Date { year: t.year(), month: t.month() as i32, day: t.day() as i32 }],
                task_id: format!("tsk_{}", uuid::Uuid::now_v7().simple()),
                expert_ids: vec![],
                ..Default::default()
            };
            let mut stream = client.stream_draw_pool(request).await?.into_inner();
            let (mut count, mut batches) = (0usize, 0usize);
            while let Some(m) = stream.message().await? {
                count += m.experts.len();
                batches += 1;
            }
            println!("pool: {count} experts in {batches} messages, {:.2} s", started.elapsed().as_secs_f64());
        }
        _ => anyhow::bail!("usage: import_load file --first N --count M --out FILE | pool --token T --institution ID"),
    }
    Ok(())
}
