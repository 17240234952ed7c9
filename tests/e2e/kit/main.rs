//! The kit's reliability blocks against real PostgreSQL, SQLite and Redis.

mod jobs;
mod locks;
mod outbox;
mod storage;
