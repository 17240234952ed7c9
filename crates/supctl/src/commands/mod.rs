//! One module per noun.

pub mod audit;
pub mod health;
pub mod institution;
pub mod keys;
pub mod token;
