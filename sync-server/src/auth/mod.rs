//! Who may call: accounts and sessions, password hashing, access and refresh tokens, the
//! sign-in and sign-up rate limits, and bootstrapping an administrator from the command line.

pub mod accounts;
pub mod bootstrap;
pub mod password;
pub mod rate_limit;
pub mod tokens;
