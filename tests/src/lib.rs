//! Cluster-level integration tests live in tests/tests/.
