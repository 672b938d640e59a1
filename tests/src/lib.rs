//! Shared helpers of the FitKart end-to-end tests.
