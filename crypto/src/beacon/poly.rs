//! Scalar-field polynomial helpers: Horner evaluation (dealing) and Lagrange
//! coefficients (recovery and share-key validation).
//!
//! Everything here works on public data except [`eval`], which the dealer runs on
//! the secret polynomial; it uses only the constant-time field operations of
//! `bls12_381::Scalar`.

use super::BeaconError;
use bls12_381::Scalar;

/// The field element for a 1-based share index (or 0 for the secret itself).
pub(crate) fn scalar_of(x: u32) -> Scalar {
    Scalar::from(u64::from(x))
}

/// Evaluates `coeffs[0] + coeffs[1] x + ... ` at `x` (Horner's rule).
pub(crate) fn eval(coeffs: &[Scalar], x: &Scalar) -> Scalar {
    coeffs
        .iter()
        .rev()
        .fold(Scalar::zero(), |acc, c| acc * x + c)
}

/// Inverts every element in place with one field inversion (Montgomery's trick).
/// Returns `false`, leaving `v` unchanged, if any element is zero.
pub(crate) fn batch_invert(v: &mut [Scalar]) -> bool {
    // prefix[i] = v[0] * ... * v[i-1]
    let mut prefix = Vec::with_capacity(v.len());
    let mut acc = Scalar::one();
    for x in v.iter() {
        prefix.push(acc);
        acc *= x;
    }
    let inv = acc.invert();
    if bool::from(inv.is_none()) {
        return false;
    }
    let mut inv = inv.unwrap_or(Scalar::zero());
    for (x, p) in v.iter_mut().zip(prefix).rev() {
        // inv = 1 / (v[0] * ... * v[i]) here.
        let next = inv * *x;
        *x = inv * p;
        inv = next;
    }
    true
}

/// Lagrange interpolation over a fixed set of distinct, non-zero x coordinates.
///
/// The denominators `prod_{j != i} (x_i - x_j)` depend only on the set, so they are
/// inverted once; each evaluation point then costs O(k) multiplications.
#[derive(Debug)]
pub(crate) struct Interpolator {
    xs: Vec<Scalar>,
    inv_denoms: Vec<Scalar>,
}

impl Interpolator {
    /// `indices` are 1-based share indices; they must be distinct and non-zero.
    pub(crate) fn new(indices: &[u32]) -> Result<Self, BeaconError> {
        let mut sorted = indices.to_vec();
        sorted.sort_unstable();
        if let Some(&0) = sorted.first() {
            return Err(BeaconError::BadIndex { index: 0 });
        }
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(BeaconError::DuplicateIndex { index: w[0] });
        }
        let xs: Vec<Scalar> = indices.iter().map(|&i| scalar_of(i)).collect();
        let mut inv_denoms: Vec<Scalar> = xs
            .iter()
            .enumerate()
            .map(|(i, xi)| {
                xs.iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .fold(Scalar::one(), |acc, (_, xj)| acc * (xi - xj))
            })
            .collect();
        if !batch_invert(&mut inv_denoms) {
            // Unreachable for distinct indices below the field order; kept as an
            // error rather than a panic.
            return Err(BeaconError::Inconsistent(
                "interpolation points are not distinct in the scalar field".into(),
            ));
        }
        Ok(Interpolator { xs, inv_denoms })
    }

    /// The coefficients `L_i(x) = prod_{j != i} (x - x_j) / (x_i - x_j)`, so that
    /// `f(x) = sum_i L_i(x) f(x_i)` for every polynomial of degree < k.
    pub(crate) fn coeffs_at(&self, x: &Scalar) -> Vec<Scalar> {
        let k = self.xs.len();
        // suffix[i] = prod_{j >= i} (x - x_j); numerator_i = prefix_i * suffix_{i+1}.
        let mut suffix = vec![Scalar::one(); k + 1];
        for i in (0..k).rev() {
            suffix[i] = suffix[i + 1] * (x - self.xs[i]);
        }
        let mut prefix = Scalar::one();
        let mut out = Vec::with_capacity(k);
        for i in 0..k {
            out.push(prefix * suffix[i + 1] * self.inv_denoms[i]);
            prefix *= x - self.xs[i];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_recovers_polynomial_values() {
        // f(x) = 7 + 3x + 5x^2 (degree 2: needs 3 points).
        let f = [Scalar::from(7u64), Scalar::from(3u64), Scalar::from(5u64)];
        let idx = [4u32, 1, 9];
        let ys: Vec<Scalar> = idx.iter().map(|&i| eval(&f, &scalar_of(i))).collect();
        let interp = Interpolator::new(&idx).unwrap();
        for x in [0u32, 1, 2, 3, 10, 200] {
            let c = interp.coeffs_at(&scalar_of(x));
            let got: Scalar = c.iter().zip(&ys).map(|(c, y)| c * y).sum();
            assert_eq!(got, eval(&f, &scalar_of(x)), "x = {x}");
        }
        // 7 + 3*2 + 5*4 = 33
        assert_eq!(eval(&f, &scalar_of(2)), Scalar::from(33u64));
    }

    #[test]
    fn rejects_duplicates_and_zero() {
        assert_eq!(
            Interpolator::new(&[1, 2, 1]).unwrap_err(),
            BeaconError::DuplicateIndex { index: 1 }
        );
        assert_eq!(
            Interpolator::new(&[0, 2]).unwrap_err(),
            BeaconError::BadIndex { index: 0 }
        );
    }

    #[test]
    fn batch_inversion() {
        let mut v: Vec<Scalar> = (1u64..=5).map(Scalar::from).collect();
        assert!(batch_invert(&mut v));
        for (i, x) in v.iter().enumerate() {
            assert_eq!(x * Scalar::from(i as u64 + 1), Scalar::one());
        }
        let mut z = vec![Scalar::one(), Scalar::zero()];
        assert!(!batch_invert(&mut z));
        assert_eq!(z, vec![Scalar::one(), Scalar::zero()]);
    }
}
