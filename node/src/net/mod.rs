//! QUIC transport (being written).
