//! Integration tests: one binary, shared helpers in common/.
