//! The kit's reliability blocks against real PostgreSQL, SQLite and Redis.

mod locks;
mod outbox;
