//! redb storage (being written).
