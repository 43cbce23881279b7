//! The two DER fragments an Ed25519 key pair needs in PKCS#11.
//!
//! * `CKA_EC_PARAMS` names the curve when the pair is generated. PKCS#11 3.0
//!   (section 2.3.10) allows the RFC 8410 object identifier `id-Ed25519`
//!   (1.3.101.112) or the printable string `"edwards25519"`. We send the OID first
//!   (SoftHSM2, YubiHSM 2 and most HSMs take it) and fall back to the name.
//! * `CKA_EC_POINT` of the public key: the 32-byte RFC 8032 encoding, which
//!   SoftHSM2 and most modules return wrapped in a DER OCTET STRING (`04 20 ..`);
//!   a few return the 32 bytes bare. Both are accepted, nothing else is.

use crate::keys::PUBLIC_KEY_LEN;

/// `CKA_EC_PARAMS` for Ed25519 as the RFC 8410 OID 1.3.101.112:
/// OBJECT IDENTIFIER, length 3, 2B 65 70.
pub const ED25519_PARAMS_OID: [u8; 5] = [0x06, 0x03, 0x2B, 0x65, 0x70];

/// `CKA_EC_PARAMS` for Ed25519 as the curve name: PrintableString "edwards25519".
pub const ED25519_PARAMS_NAME: [u8; 14] = [
    0x13, 0x0C, b'e', b'd', b'w', b'a', b'r', b'd', b's', b'2', b'5', b'5', b'1', b'9',
];

/// DER tag of an OCTET STRING.
const OCTET_STRING: u8 = 0x04;

/// Extracts the 32-byte Ed25519 public key from a `CKA_EC_POINT` value: either a
/// DER OCTET STRING holding exactly 32 bytes (short or one-byte long length form)
/// or the bare 32 bytes. The error says what was found, never more than lengths
/// and tags (a public key is not secret, but a garbled value is noise in a log).
pub fn decode_ec_point(value: &[u8]) -> Result<[u8; PUBLIC_KEY_LEN], String> {
    let body = match value {
        // Bare encoding. An OCTET STRING of 32 bytes is 34 long, so 32 is never
        // ambiguous with a wrapped value.
        v if v.len() == PUBLIC_KEY_LEN => v,
        [OCTET_STRING, 0x20, rest @ ..] => rest,
        // Long form with one length byte (legal BER, rejected by strict DER but
        // seen in the wild); the length must still be 32.
        [OCTET_STRING, 0x81, 0x20, rest @ ..] => rest,
        [tag, ..] => {
            return Err(format!(
                "CKA_EC_POINT is {} bytes starting with tag {tag:#04x}; expected a 32-byte \
                 Ed25519 point, bare or in a DER OCTET STRING",
                value.len()
            ))
        }
        [] => return Err("CKA_EC_POINT is empty".to_owned()),
    };
    body.try_into().map_err(|_| {
        format!(
            "CKA_EC_POINT holds {} bytes; an Ed25519 point is {PUBLIC_KEY_LEN}",
            body.len()
        )
    })
}

/// Whether a `CKA_EC_PARAMS` value names Ed25519 (either accepted encoding).
pub fn is_ed25519_params(value: &[u8]) -> bool {
    value == ED25519_PARAMS_OID || value == ED25519_PARAMS_NAME
}

#[cfg(test)]
mod tests {
    use super::*;

    const POINT: [u8; 32] = [7u8; 32];

    #[test]
    fn params_encode_the_rfc8410_oid_and_the_curve_name() {
        // 1.3.101.112: first byte 40*1 + 3 = 43 = 0x2B, then 101, 112.
        assert_eq!(ED25519_PARAMS_OID[2..], [43, 101, 112]);
        assert_eq!(&ED25519_PARAMS_NAME[2..], b"edwards25519");
        assert_eq!(ED25519_PARAMS_NAME[1] as usize, b"edwards25519".len());
        assert!(is_ed25519_params(&ED25519_PARAMS_OID));
        assert!(is_ed25519_params(&ED25519_PARAMS_NAME));
        // Ed448 (1.3.101.113) is not Ed25519.
        assert!(!is_ed25519_params(&[0x06, 0x03, 0x2B, 0x65, 0x71]));
    }

    #[test]
    fn ec_point_accepts_wrapped_and_bare_encodings() {
        let mut wrapped = vec![0x04, 0x20];
        wrapped.extend_from_slice(&POINT);
        assert_eq!(decode_ec_point(&wrapped).unwrap(), POINT);
        assert_eq!(decode_ec_point(&POINT).unwrap(), POINT);
        let mut long_form = vec![0x04, 0x81, 0x20];
        long_form.extend_from_slice(&POINT);
        assert_eq!(decode_ec_point(&long_form).unwrap(), POINT);
    }

    #[test]
    fn ec_point_rejects_everything_else() {
        assert!(decode_ec_point(&[]).is_err());
        assert!(decode_ec_point(&POINT[..31]).is_err());
        // Wrong tag (BIT STRING), wrong inner length, trailing bytes.
        let mut bit_string = vec![0x03, 0x20];
        bit_string.extend_from_slice(&POINT);
        assert!(decode_ec_point(&bit_string).unwrap_err().contains("0x03"));
        let mut short = vec![0x04, 0x20];
        short.extend_from_slice(&POINT[..31]);
        assert!(decode_ec_point(&short).is_err());
        let mut trailing = vec![0x04, 0x20];
        trailing.extend_from_slice(&POINT);
        trailing.push(0);
        assert!(decode_ec_point(&trailing).unwrap_err().contains("33 bytes"));
        let mut wrong_len = vec![0x04, 0x21];
        wrong_len.extend_from_slice(&POINT);
        wrong_len.push(0);
        assert!(decode_ec_point(&wrong_len).is_err());
    }
}
