//! One module per noun.

pub mod audit;
pub mod calendar;
pub mod health;
pub mod institution;
pub mod keys;
pub mod policy;
pub mod token;
