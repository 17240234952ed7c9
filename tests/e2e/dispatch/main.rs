//! End-to-end tests of the dispatch service, over gRPC, on SQLite and on PostgreSQL.

mod attachments;
mod designate;
mod draws;
mod exports;
mod letters;
mod lifecycle;
mod notifications;
mod replicas;
mod reports;
mod responses;
mod submissions;
mod tasks;
mod updates;
mod vacancies;
mod yearly;
