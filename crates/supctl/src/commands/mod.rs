//! One module per noun.

pub mod audit;
pub mod calendar;
pub mod draw;
pub mod expert;
pub mod health;
pub mod institution;
pub mod keys;
pub mod policy;
pub mod task;
pub mod token;
