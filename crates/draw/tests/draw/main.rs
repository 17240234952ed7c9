//! The draw crate against the reference implementation: the test vectors that PyPI
//! `consistent-sampler` 1.0.10 computed (`tests/reference/consistent_sampler_vectors.py`), and a
//! full draw from prepare to verify through the public API only.

mod round_trip;
mod vectors;
mod worked_example;
