//! The controlled list of specialty codes: the national occupational classification (中华人民共和国
//! 职业分类大典, 2022 edition), as codes `D`, `D-DD`, `D-DD-DD` and `D-DD-DD-DD` (major group,
//! middle group, minor group, occupation) with their Chinese names.
//!
//! Built in are only the facts the project is sure of: the 8 major groups and the code format.
//! The bureau installs the full list (or any part of it) as `specialties.csv` in the specialty
//! directory (`--specialty-data-dir` / `SPECIALTY_DATA_DIR`), read at start on top of the major
//! groups; a bad file refuses start, naming the file and the line.
//!
//! Membership rule ([`Specialties::check`]): a code always has the format; each of its groups,
//! from the major group down, must be on the list whenever the list names at least one subgroup
//! of the group above it. Where the list holds no detail below a group, codes under that group
//! are taken on their format alone, so a partial list never refuses a code it cannot judge.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use supervision_kit::vocab::SpecialtyCode;

/// The file name the specialty directory holds.
pub const SPECIALTY_FILE: &str = "specialties.csv";

/// The built-in part: the 8 major groups of the 2022 edition.
const EMBEDDED: &str = include_str!("../data/specialties.csv");

/// Why a specialty list was refused; the message names the file and the line.
#[derive(Debug, thiserror::Error)]
pub enum SpecialtyError {
    #[error("cannot read the specialty list {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the specialty list {file}, line {line}: {problem}")]
    Line { file: String, line: u64, problem: String },
}

impl SpecialtyError {
    pub fn file(&self) -> &str {
        match self {
            Self::Read { file, .. } | Self::Line { file, .. } => file,
        }
    }
}

/// The loaded list, in code order.
#[derive(Debug, Clone)]
pub struct Specialties {
    names: BTreeMap<String, String>,
    /// Codes of the groups at least one subgroup of which is listed.
    detailed: BTreeSet<String>,
    /// The installed file, when there is one.
    installed: Option<PathBuf>,
}

/// The level of a code: 1 (major group) to 4 (occupation).
pub fn level(code: &str) -> usize {
    code.split('-').count()
}

/// The group directly above `code`; `None` for a major group.
fn parent(code: &str) -> Option<&str> {
    code.rfind('-').map(|i| &code[..i])
}

/// Whether `code` is `group` or lies under it.
pub fn is_under(code: &str, group: &str) -> bool {
    code == group || (code.starts_with(group) && code.as_bytes().get(group.len()) == Some(&b'-'))
}

/// Reads `code,name` rows (a header line first) of UTF-8 text; codes unique and well formed,
/// names not empty.
fn parse(text: &str, file: &str) -> Result<BTreeMap<String, String>, SpecialtyError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let bad = |line: u64, problem: String| SpecialtyError::Line { file: file.to_owned(), line, problem };
    let mut reader = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    if headers.len() != 2 || &headers[0] != "code" || &headers[1] != "name" {
        return Err(bad(1, "the first line must be the header `code,name`".into()));
    }
    let mut names = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| bad(e.position().map_or(0, csv::Position::line), e.to_string()))?;
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() != 2 {
            return Err(bad(line, format!("expected 2 fields (code, name), found {}", record.len())));
        }
        let (code, name) = (&record[0], &record[1]);
        if SpecialtyCode::parse(code).is_none() {
            return Err(bad(
                line,
                format!("code `{code}` is not of the form D, D-DD, D-DD-DD or D-DD-DD-DD (D a digit 1-8)"),
            ));
        }
        if name.is_empty() {
            return Err(bad(line, format!("code {code} has no name")));
        }
        if names.insert(code.to_owned(), name.to_owned()).is_some() {
            return Err(bad(line, format!("code {code} appears twice")));
        }
    }
    Ok(names)
}

impl Specialties {
    /// Only the built-in major groups.
    pub fn embedded() -> Self {
        let names = parse(EMBEDDED, "built-in specialties.csv").expect("the built-in specialty list is valid");
        Self::from_names(names, None)
    }

    fn from_names(names: BTreeMap<String, String>, installed: Option<PathBuf>) -> Self {
        let detailed = names.keys().filter_map(|c| parent(c)).map(str::to_owned).collect();
        Self { names, detailed, installed }
    }

    /// The built-in major groups plus `dir/specialties.csv` when `dir` is given and holds it
    /// (a name there replaces the built-in one). Every listed group's parent must be listed too.
    pub fn load(dir: Option<&Path>) -> Result<Self, SpecialtyError> {
        let mut specialties = Self::embedded();
        let Some(dir) = dir else { return Ok(specialties) };
        let path = dir.join(SPECIALTY_FILE);
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && dir.is_dir() => return Ok(specialties),
            Err(source) => return Err(SpecialtyError::Read { file, source }),
        };
        let installed = parse(&text, &file)?;
        for code in installed.keys() {
            if let Some(group) = parent(code)
                && !installed.contains_key(group)
                && !specialties.names.contains_key(group)
            {
                return Err(SpecialtyError::Line {
                    file,
                    line: 0,
                    problem: format!("code {code} is listed without its group {group}"),
                });
            }
        }
        specialties.names.extend(installed);
        Ok(Self::from_names(specialties.names, Some(path)))
    }

    /// The installed file, if one was loaded.
    pub fn installed(&self) -> Option<&Path> {
        self.installed.as_deref()
    }

    /// How many codes the list holds at each level, 1 to 4.
    pub fn counts(&self) -> [usize; 4] {
        let mut counts = [0; 4];
        for code in self.names.keys() {
            counts[level(code) - 1] += 1;
        }
        counts
    }

    /// The name of a listed code.
    pub fn name(&self, code: &str) -> Option<&str> {
        self.names.get(code).map(String::as_str)
    }

    /// Up to `limit` entries in code order after `after`, under `prefix` (empty: all) and with
    /// `name_contains` in the name (empty: any).
    pub fn list<'a>(
        &'a self,
        prefix: &str,
        name_contains: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(&'a str, &'a str)> {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
        self.names
            .range::<String, _>((start, Bound::Unbounded))
            .filter(|(code, _)| prefix.is_empty() || is_under(code, prefix))
            .filter(|(_, name)| name.contains(name_contains))
            .take(limit)
            .map(|(c, n)| (c.as_str(), n.as_str()))
            .collect()
    }

    /// Whether `code` may be an expert's specialty: the format always; then each group from the
    /// major group down must be listed whenever the list names any subgroup of the group above
    /// it (the major groups are always listed). The error says what is wrong.
    pub fn check(&self, code: &str) -> Result<(), String> {
        if SpecialtyCode::parse(code).is_none() {
            return Err("must be a code of the national occupational classification: D, D-DD, D-DD-DD or D-DD-DD-DD \
                        (D a digit 1-8), e.g. 4-07-05-01"
                .into());
        }
        let mut end = 0;
        loop {
            end = code[end..].find('-').map_or(code.len(), |i| end + i);
            let group = &code[..end];
            if !self.names.contains_key(group) {
                let judged = parent(group).is_none_or(|p| self.detailed.contains(p));
                return if judged {
                    Err(format!("{group} is not on the installed occupational classification list"))
                } else {
                    Ok(())
                };
            }
            if end == code.len() {
                return Ok(());
            }
            end += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture in the shape of the bureau's file; the names are placeholders, not the book's.
    const INSTALLED: &str =
        "\u{feff}code,name\n4-07,测试中类甲\n4-07-05,测试小类甲\n4-07-05-01,测试职业甲\n6-01,测试中类乙\n";

    fn installed() -> (tempfile::TempDir, Specialties) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SPECIALTY_FILE), INSTALLED).unwrap();
        let list = Specialties::load(Some(dir.path())).unwrap();
        (dir, list)
    }

    #[test]
    fn the_built_in_list_is_the_eight_major_groups() {
        let list = Specialties::embedded();
        assert_eq!(list.counts(), [8, 0, 0, 0]);
        let codes: Vec<&str> = list.list("", "", None, 100).into_iter().map(|(c, _)| c).collect();
        assert_eq!(codes, ["1", "2", "3", "4", "5", "6", "7", "8"]);
        assert_eq!(list.name("2"), Some("专业技术人员"));
        assert!(list.installed().is_none());
    }

    #[test]
    fn without_detail_a_code_is_checked_for_its_format_only() {
        let list = Specialties::embedded();
        assert!(list.check("4-07-05-01").is_ok());
        assert!(list.check("8").is_ok());
        for bad in ["9", "0-01", "4-7", "4-07-05-01-01", "", "4-07-", "a"] {
            assert!(list.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_installed_list_is_complete_where_it_has_detail() {
        let (_dir, list) = installed();
        assert_eq!(list.counts(), [8, 2, 1, 1]);
        assert!(list.installed().is_some());
        assert!(list.check("4-07-05-01").is_ok());
        assert!(list.check("4-07").is_ok());
        // Group 4 lists middle groups, so 4-08 must be listed; 4-07-05 lists occupations.
        assert!(list.check("4-08").unwrap_err().contains("4-08"));
        assert!(list.check("4-08-01-01").unwrap_err().contains("4-08 "));
        assert!(list.check("4-07-05-02").is_err());
        assert!(list.check("4-07-06").is_err());
        // No detail below 6-01, none below group 2: the format decides.
        assert!(list.check("6-01-02-03").is_ok());
        assert!(list.check("2-02-01").is_ok());
        assert!(list.check("6-02").is_err());
    }

    #[test]
    fn listing_filters_by_group_and_name_and_pages_in_code_order() {
        let (_dir, list) = installed();
        let under: Vec<&str> = list.list("4-07", "", None, 100).into_iter().map(|(c, _)| c).collect();
        assert_eq!(under, ["4-07", "4-07-05", "4-07-05-01"]);
        let named: Vec<&str> = list.list("", "职业", None, 100).into_iter().map(|(c, _)| c).collect();
        assert_eq!(named, ["4-07-05-01"]);
        let page: Vec<&str> = list.list("4", "", Some("4-07"), 2).into_iter().map(|(c, _)| c).collect();
        assert_eq!(page, ["4-07-05", "4-07-05-01"]);
        assert!(list.list("4-0", "", None, 100).is_empty(), "a prefix matches whole groups only");
    }

    #[test]
    fn a_bad_file_is_refused_naming_the_line() {
        let cases = [
            ("name,code\n1,x\n", "header"),
            ("code,name\n4-7,x\n", "line 2"),
            ("code,name\n4-07,\n", "no name"),
            ("code,name\n4-07,a\n4-07,b\n", "twice"),
            ("code,name\n4-07-05,a\n", "without its group 4-07"),
        ];
        for (text, expected) in cases {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(SPECIALTY_FILE), text).unwrap();
            let err = Specialties::load(Some(dir.path())).unwrap_err().to_string();
            assert!(err.contains(expected) && err.contains(SPECIALTY_FILE), "{text}: {err}");
        }
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(Specialties::load(Some(empty.path())).unwrap().counts(), [8, 0, 0, 0], "no file: built in only");
        assert!(Specialties::load(Some(&empty.path().join("nowhere"))).is_err(), "a missing directory is refused");
    }

    #[test]
    fn an_installed_name_replaces_the_built_in_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SPECIALTY_FILE), "code,name\n7,测试名称\n").unwrap();
        assert_eq!(Specialties::load(Some(dir.path())).unwrap().name("7"), Some("测试名称"));
    }
}
