//! The frozen candidate list (step 2): the registry's opaque expert ids, validated, sorted
//! bytewise, one per line with `\n` after each, its SHA-256 and its count.

use std::{
    fmt, str,
    sync::{Arc, OnceLock},
};

use sha2::{Digest, Sha256};

use crate::error::CandidateListError;

/// The longest expert id accepted, in bytes. The registry's ids are far shorter (a UUID has 36);
/// the bound keeps a malformed blob from passing as one huge id.
pub const MAX_EXPERT_ID_LEN: usize = 128;

/// An expert's opaque registry id (D18): printable ASCII without whitespace (bytes 0x21-0x7E),
/// 1 to [`MAX_EXPERT_ID_LEN`] bytes. Never a name or an ID number.
///
/// Ordering is bytewise, which for ASCII is also Python's string order, the order the frozen list
/// and the ticket tie-break use.
///
/// The text is shared: a clone is a reference count, not a copy. A draw's frozen list is its
/// pool's list less the excluded, and at 100,000 experts copying every id into it cost about a
/// tenth of a draw with the system allocator (issue 12).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExpertId(Arc<str>);

impl ExpertId {
    pub fn parse(id: &str) -> Result<Self, CandidateListError> {
        Self::check(id.as_bytes())?;
        Ok(Self(Arc::from(id)))
    }

    fn check(id: &[u8]) -> Result<(), CandidateListError> {
        if id.is_empty() {
            return Err(CandidateListError::EmptyId);
        }
        if id.len() > MAX_EXPERT_ID_LEN {
            return Err(CandidateListError::IdTooLong { len: id.len(), max: MAX_EXPERT_ID_LEN });
        }
        match id.iter().position(|b| !(0x21..=0x7e).contains(b)) {
            Some(index) => Err(CandidateListError::InvalidIdByte { byte: id[index], index }),
            None => Ok(()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id's line of a list's blob: the id and `\n`.
    fn write_line(&self, blob: &mut Vec<u8>) {
        blob.extend_from_slice(self.0.as_bytes());
        blob.push(b'\n');
    }
}

impl fmt::Display for ExpertId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The eligible candidates frozen for one draw: sorted bytewise, no duplicates, at least one.
///
/// [`FrozenList::bytes`] is the blob that is stored and exported; [`FrozenList::sha256_hex`] is the
/// lower-case hex SHA-256 of exactly those bytes. The hash is computed when the list is made; the
/// blob (3.7 MB at 100,000 candidates) is written out only when it is first asked for, as most
/// lists are ranked and never stored on their own.
#[derive(Debug, Clone)]
pub struct FrozenList {
    /// Shared with the orders ranked from the list, which refer to its ids by position.
    ids: Arc<[ExpertId]>,
    bytes: OnceLock<Vec<u8>>,
    sha256_hex: String,
}

/// Two lists are equal when they hold the same ids, whether or not their blobs were written.
impl PartialEq for FrozenList {
    fn eq(&self, other: &Self) -> bool {
        self.sha256_hex == other.sha256_hex && self.ids == other.ids
    }
}

impl Eq for FrozenList {}

/// The SHA-256 of a blob of lines, fed as the lines are made: through a small buffer, so the
/// hasher gets whole blocks rather than an id and a newline at a time.
struct LineHasher {
    hasher: Sha256,
    buffer: Vec<u8>,
}

impl LineHasher {
    const BUFFER: usize = 8 * 1024;

    fn new() -> Self {
        Self { hasher: Sha256::new(), buffer: Vec::with_capacity(Self::BUFFER + MAX_EXPERT_ID_LEN + 1) }
    }

    fn line(&mut self, id: &ExpertId) {
        id.write_line(&mut self.buffer);
        if self.buffer.len() >= Self::BUFFER {
            self.hasher.update(&self.buffer);
            self.buffer.clear();
        }
    }

    fn hex(mut self) -> String {
        self.hasher.update(&self.buffer);
        hex::encode(self.hasher.finalize())
    }
}

impl FrozenList {
    /// Freezes the eligible ids in any order: sorts them bytewise. A duplicate is an error rather
    /// than something to drop silently: it means the pool was built wrong upstream.
    pub fn freeze(ids: impl IntoIterator<Item = ExpertId>) -> Result<Self, CandidateListError> {
        let mut ids: Vec<ExpertId> = ids.into_iter().collect();
        if ids.is_empty() {
            return Err(CandidateListError::Empty);
        }
        ids.sort_unstable();
        if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(CandidateListError::Duplicate { id: pair[0].to_string() });
        }
        let mut hasher = LineHasher::new();
        ids.iter().for_each(|id| hasher.line(id));
        // Each id again, allocated in list order: the ranking reads every id in list order, and
        // ids left where they were first allocated (the registry's order) cost it a cache miss
        // apiece, a third of its time at 100,000 (docs/performance.md, eleventh run).
        let ids: Arc<[ExpertId]> = ids.iter().map(|id| ExpertId(Arc::from(id.as_str()))).collect();
        Ok(Self { ids, bytes: OnceLock::new(), sha256_hex: hasher.hex() })
    }

    /// Parses and freezes ids given as strings, in any order.
    pub fn freeze_strs<S: AsRef<str>>(ids: impl IntoIterator<Item = S>) -> Result<Self, CandidateListError> {
        let ids = ids.into_iter().map(|id| ExpertId::parse(id.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Self::freeze(ids)
    }

    /// Reads a stored or exported blob back, refusing anything that [`FrozenList::freeze`] would
    /// not have written byte for byte: a bad id, a missing final newline, an unsorted or repeated
    /// line, an empty list.
    pub fn parse(bytes: &[u8]) -> Result<Self, CandidateListError> {
        if bytes.is_empty() {
            return Err(CandidateListError::Empty);
        }
        let Some(body) = bytes.strip_suffix(b"\n") else {
            return Err(CandidateListError::MissingFinalNewline);
        };
        let mut ids: Vec<ExpertId> = Vec::new();
        for (index, raw) in body.split(|b| *b == b'\n').enumerate() {
            let line = index + 1;
            ExpertId::check(raw).map_err(|problem| CandidateListError::BadLine { line, problem: Box::new(problem) })?;
            let id = ExpertId(Arc::from(str::from_utf8(raw).expect("check() admits only ASCII")));
            if let Some(previous) = ids.last() {
                if *previous == id {
                    return Err(CandidateListError::RepeatedLine { line, id: id.to_string() });
                }
                if *previous > id {
                    return Err(CandidateListError::NotSorted {
                        line,
                        previous: previous.to_string(),
                        id: id.to_string(),
                    });
                }
            }
            ids.push(id);
        }
        Ok(Self {
            ids: ids.into(),
            bytes: OnceLock::from(bytes.to_vec()),
            sha256_hex: hex::encode(Sha256::digest(bytes)),
        })
    }

    /// This list without the ids `leave_out` picks, asked once per id in the list's order:
    /// sorted and distinct as it was, so nothing is checked or sorted again, and the ids are
    /// shared with this list rather than copied. A draw's frozen list is its pool's list without
    /// the excluded. Each id kept is hashed in the same pass.
    pub fn without(&self, mut leave_out: impl FnMut(&ExpertId) -> bool) -> Result<Self, CandidateListError> {
        let mut hasher = LineHasher::new();
        let ids: Vec<ExpertId> =
            self.ids.iter().filter(|id| !leave_out(id)).inspect(|id| hasher.line(id)).cloned().collect();
        if ids.is_empty() {
            return Err(CandidateListError::Empty);
        }
        Ok(Self { ids: ids.into(), bytes: OnceLock::new(), sha256_hex: hasher.hex() })
    }

    /// The ids in bytewise order.
    pub fn ids(&self) -> &[ExpertId] {
        &self.ids
    }

    /// The ids, shared rather than copied.
    pub(crate) fn shared_ids(&self) -> Arc<[ExpertId]> {
        Arc::clone(&self.ids)
    }

    /// The blob: each id followed by `\n`, UTF-8 (in fact ASCII). Written out the first time it
    /// is asked for.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.get_or_init(|| {
            let mut bytes = Vec::with_capacity(self.ids.iter().map(|id| id.0.len() + 1).sum());
            self.ids.iter().for_each(|id| id.write_line(&mut bytes));
            bytes
        })
    }

    /// Lower-case hex SHA-256 of [`FrozenList::bytes`].
    pub fn sha256_hex(&self) -> &str {
        &self.sha256_hex
    }

    pub fn count(&self) -> usize {
        self.ids.len()
    }

    pub fn contains(&self, id: &ExpertId) -> bool {
        self.ids.binary_search(id).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ExpertId {
        ExpertId::parse(s).unwrap()
    }

    #[test]
    fn a_list_without_some_ids_is_the_list_frozen_from_the_rest() {
        let pool = FrozenList::freeze_strs(["E3", "E1", "E10", "E2", "E4"]).unwrap();
        let list = pool.without(|id| ["E10", "E4"].contains(&id.as_str())).unwrap();
        assert_eq!(list, FrozenList::freeze_strs(["E1", "E2", "E3"]).unwrap());
        assert_eq!(list.bytes(), b"E1\nE2\nE3\n");
        assert!(matches!(pool.without(|_| true), Err(CandidateListError::Empty)));
    }

    #[test]
    fn printable_ascii_ids_are_accepted_from_bang_to_tilde() {
        for s in ["!", "~", "E-1", "a:b", "05d2fbb9-49af-b4b5-56c8-79f9cadc0064", "{x}"] {
            assert!(ExpertId::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn ids_with_whitespace_control_or_non_ascii_bytes_are_refused() {
        assert_eq!(ExpertId::parse("E 1"), Err(CandidateListError::InvalidIdByte { byte: b' ', index: 1 }));
        assert_eq!(ExpertId::parse("E1\r"), Err(CandidateListError::InvalidIdByte { byte: b'\r', index: 2 }));
        assert_eq!(ExpertId::parse("E\t1"), Err(CandidateListError::InvalidIdByte { byte: b'\t', index: 1 }));
        assert_eq!(ExpertId::parse("专家"), Err(CandidateListError::InvalidIdByte { byte: 0xe4, index: 0 }));
        assert_eq!(ExpertId::parse("E\u{7f}"), Err(CandidateListError::InvalidIdByte { byte: 0x7f, index: 1 }));
    }

    #[test]
    fn empty_and_overlong_ids_are_refused() {
        assert_eq!(ExpertId::parse(""), Err(CandidateListError::EmptyId));
        assert!(ExpertId::parse(&"x".repeat(MAX_EXPERT_ID_LEN)).is_ok());
        assert_eq!(
            ExpertId::parse(&"x".repeat(MAX_EXPERT_ID_LEN + 1)),
            Err(CandidateListError::IdTooLong { len: MAX_EXPERT_ID_LEN + 1, max: MAX_EXPERT_ID_LEN })
        );
    }

    #[test]
    fn freezing_sorts_bytewise_not_numerically_and_ends_every_line_with_a_newline() {
        let list = FrozenList::freeze_strs(["E2", "E10", "e1", "E1", "Z"]).unwrap();
        assert_eq!(list.bytes(), b"E1\nE10\nE2\nZ\ne1\n");
        assert_eq!(list.count(), 5);
        assert_eq!(list.ids()[0], id("E1"));
    }

    #[test]
    fn the_list_hash_is_the_sha256_of_exactly_the_blob() {
        let list = FrozenList::freeze_strs(["b", "a"]).unwrap();
        assert_eq!(list.sha256_hex(), hex::encode(Sha256::digest(b"a\nb\n")));
    }

    #[test]
    fn a_long_lists_hash_made_as_it_is_frozen_or_filtered_is_the_hash_of_its_blob() {
        // Well over the hasher's buffer, so it is fed in several parts.
        let pool = FrozenList::freeze_strs((0..3_000).map(|n| format!("exp_{n:032x}"))).unwrap();
        assert_eq!(pool.sha256_hex(), hex::encode(Sha256::digest(pool.bytes())));
        let list = pool.without(|id| id.as_str().ends_with('7')).unwrap();
        assert_eq!(list.count(), (0..3_000).filter(|n| n % 16 != 7).count());
        assert_eq!(list.sha256_hex(), hex::encode(Sha256::digest(list.bytes())));
        assert_eq!(FrozenList::parse(list.bytes()).unwrap(), list);
        assert!(list.bytes().starts_with(b"exp_00000000000000000000000000000000\nexp_"));
    }

    #[test]
    fn a_duplicate_id_is_an_error_not_silently_dropped() {
        assert_eq!(FrozenList::freeze_strs(["E1", "E2", "E1"]), Err(CandidateListError::Duplicate { id: "E1".into() }));
    }

    #[test]
    fn an_empty_pool_cannot_be_frozen() {
        assert_eq!(FrozenList::freeze(Vec::new()), Err(CandidateListError::Empty));
        assert_eq!(FrozenList::parse(b""), Err(CandidateListError::Empty));
    }

    #[test]
    fn a_blob_parses_back_to_the_same_list() {
        let list = FrozenList::freeze_strs(["E3", "E1", "E2"]).unwrap();
        assert_eq!(FrozenList::parse(list.bytes()).unwrap(), list);
    }

    #[test]
    fn a_blob_without_its_final_newline_is_refused() {
        assert_eq!(FrozenList::parse(b"E1\nE2"), Err(CandidateListError::MissingFinalNewline));
    }

    #[test]
    fn a_blob_with_crlf_line_ends_is_refused_at_the_first_line() {
        assert_eq!(
            FrozenList::parse(b"E1\r\nE2\r\n"),
            Err(CandidateListError::BadLine {
                line: 1,
                problem: Box::new(CandidateListError::InvalidIdByte { byte: b'\r', index: 2 })
            })
        );
    }

    #[test]
    fn a_blob_with_an_empty_line_is_refused() {
        assert_eq!(
            FrozenList::parse(b"E1\n\nE2\n"),
            Err(CandidateListError::BadLine { line: 2, problem: Box::new(CandidateListError::EmptyId) })
        );
    }

    #[test]
    fn an_unsorted_blob_is_refused_naming_the_line() {
        assert_eq!(
            FrozenList::parse(b"E1\nE2\nE10\n"),
            Err(CandidateListError::NotSorted { line: 3, previous: "E2".into(), id: "E10".into() })
        );
    }

    #[test]
    fn a_blob_repeating_a_line_is_refused() {
        assert_eq!(FrozenList::parse(b"E1\nE1\n"), Err(CandidateListError::RepeatedLine { line: 2, id: "E1".into() }));
    }

    #[test]
    fn membership_is_answered_from_the_sorted_ids() {
        let list = FrozenList::freeze_strs(["E3", "E1"]).unwrap();
        assert!(list.contains(&id("E3")));
        assert!(!list.contains(&id("E2")));
    }
}
