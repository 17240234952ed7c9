//! End-to-end tests of the dispatch service, over gRPC, on SQLite and on PostgreSQL.

mod draws;
mod letters;
mod lifecycle;
mod replicas;
mod reports;
mod responses;
mod submissions;
mod tasks;
mod vacancies;
