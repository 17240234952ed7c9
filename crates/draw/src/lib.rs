//! The verifiable random draw (抽取) of D8, as a pure, versioned algorithm, and its verifier.
//!
//! Owns the bit-level protocol of ARCHITECTURE.md "The draw", steps 2, 4 and 5:
//!
//! - the frozen candidate list: the registry's opaque expert ids (D18), sorted bytewise, one per
//!   line with `\n` after each, its SHA-256 and count ([`FrozenList`]);
//! - the 32-byte server seed from the OS CSPRNG, its commitment (SHA-256 of the 32 raw bytes),
//!   the witness's dice digits and the seed string ([`ServerSeed`], [`Commitment`], [`DiceDigits`],
//!   [`SeedString`]);
//! - the ranking by Rivest's consistent sampler with first-generation tickets, bit for bit the
//!   order of `consistent_sampler.sampler(ids, seed=<seed string>, with_replacement=False)` from
//!   PyPI `consistent-sampler` 1.0.10 ([`rank`], [`DrawOrder`], [`Ticket`]);
//! - the fill walk over that order with the same-employer rule, its one relaxation (D14), and the
//!   continuation that fills vacancies ([`fill`], [`Fill`]);
//! - the verifier that recomputes a recorded draw and names every mismatch ([`verify`]).
//!
//! `docs/draw-algorithm.md` describes the same protocol for auditors; the test vectors in
//! `tests/vectors.json` come from the PyPI package itself.
//!
//! Pure library: no I/O, no clock, no storage, and it must not depend on any other crate of this
//! workspace (no service, kit, policy or gRPC crate). The only side effect is reading the OS
//! random source in [`ServerSeed::generate`]. The eligibility exclusions of D14 (step 1) belong
//! to the dispatch service; the walk takes the facts it needs from its caller at that moment.

mod candidates;
mod error;
mod fill;
mod order;
mod seed;
mod ticket;
mod verify;

pub use candidates::{ExpertId, FrozenList, MAX_EXPERT_ID_LEN};
pub use error::{CandidateListError, FillError, SeedError};
pub use fill::{
    CandidateFacts, EmployerKey, Fill, Placement, Relaxation, SameEmployerRule, Skip, SkipReason, Stage, TeamSize,
    Vacancy, fill,
};
pub use order::{DrawOrder, RankedCandidate, rank, sampling_order};
pub use seed::{Commitment, DiceDigits, MAX_DICE_DIGITS, MIN_DICE_DIGITS, SeedString, ServerSeed};
pub use ticket::Ticket;
pub use verify::{DrawRecord, Mismatch, RecordedRank, Verification, verify};

/// The version of the algorithm this crate implements, stored with every draw so that a later
/// change of any step (list format, commitment, seed string, ticket, order, fill) is a new
/// version and old draws stay verifiable under the rules they were made with.
///
/// `draw-v1`: the protocol of `docs/draw-algorithm.md` as first written: frozen list of sorted
/// ids with `\n` after each; commitment = SHA-256 of the 32 raw seed bytes; seed string
/// `<seed hex>[:<dice digits>]`; consistent-sampler 1.0.10 first-generation tickets; the fill
/// walk with the same-employer rule relaxed at most once.
pub const ALGORITHM_VERSION: &str = "draw-v1";
