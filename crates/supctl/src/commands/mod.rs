//! One module per noun.

pub mod activity;
pub mod assignment;
pub mod audit;
pub mod calendar;
pub mod draw;
pub mod draw_run;
pub mod expert;
pub mod finance;
pub mod health;
pub mod import;
pub mod incident;
pub mod institution;
pub mod keys;
pub mod letter;
pub mod meeting;
pub mod policy;
pub mod recruitment;
pub mod relation;
pub mod report;
pub mod session;
pub mod submission;
pub mod task;
pub mod token;
pub mod training;
