//! End-to-end tests of the `train` binary (filled in with the binary).
