//! What can go wrong: a candidate id or list that breaks the frozen-list format, a seed,
//! commitment or dice string that is not in its exact form, and a fill continued over the wrong
//! order or for an expert who holds no place.

/// A candidate id, or a frozen list, that is not in the exact format of step 2.
///
/// Line numbers count from 1, as an auditor reading the blob in an editor would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CandidateListError {
    #[error("an expert id may not be empty")]
    EmptyId,
    #[error("an expert id is at most {max} bytes, this one has {len}")]
    IdTooLong { len: usize, max: usize },
    /// Ids are printable ASCII without whitespace: bytes 0x21 to 0x7E. `byte` is the first one
    /// outside that range, `index` its offset in the id.
    #[error("an expert id may hold only printable ASCII without spaces: byte 0x{byte:02x} at offset {index}")]
    InvalidIdByte { byte: u8, index: usize },
    #[error("expert id {id:?} appears twice in the candidate list")]
    Duplicate { id: String },
    #[error("a draw needs at least one candidate")]
    Empty,
    #[error("frozen list line {line}: {problem}")]
    BadLine { line: usize, problem: Box<CandidateListError> },
    #[error("frozen list line {line}: {id:?} comes after {previous:?}, but the list is sorted bytewise")]
    NotSorted { line: usize, previous: String, id: String },
    #[error("frozen list line {line}: {id:?} repeats the line before it")]
    RepeatedLine { line: usize, id: String },
    #[error("the frozen list must end with a newline after its last id")]
    MissingFinalNewline,
}

/// A seed, commitment or dice string that is not in its exact form.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the operating system's random source failed: {0}")]
    Entropy(String),
    /// Server seeds and commitments are written as exactly 64 lower-case hex digits; anything
    /// else (upper case, spaces, a `0x` prefix) would give a different seed string.
    #[error("the {what} must be exactly 64 lower-case hex digits")]
    NotLowerHex64 { what: &'static str },
    #[error("dice digits must be ASCII 0-9 only: byte 0x{byte:02x} at offset {index}")]
    DiceNotDigits { byte: u8, index: usize },
    #[error("at least {min} dice digits are needed, {given} given")]
    TooFewDice { given: usize, min: usize },
    #[error("at most {max} dice digits are accepted, {given} given")]
    TooManyDice { given: usize, max: usize },
}

/// A fill continued with an order that is not the one it was made from, or asked to vacate an
/// expert who holds no place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    #[error("this fill was made over an order of {expected} candidates, not {given}")]
    OrderLength { expected: usize, given: usize },
    #[error("this fill placed {placed:?} at order position {position}, where this order has {found:?}")]
    OrderMismatch { position: usize, placed: String, found: String },
    #[error("expert {0:?} holds no place in this draw")]
    NotPlaced(String),
}
