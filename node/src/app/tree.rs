//! The crit-bit Merkle tree behind the state root (layout in [`super::state`]'s
//! module doc). Kept in memory with cached branch hashes, so a block rehashes
//! only the paths to the leaves it changed.

use bitcraps_crypto::{hash, Hash32};

pub(crate) fn node_hash(bit: u8, left: &Hash32, right: &Hash32) -> Hash32 {
    let mut buf = [0u8; 66];
    buf[0] = 0x01;
    buf[1] = bit;
    buf[2..34].copy_from_slice(left.as_bytes());
    buf[34..66].copy_from_slice(right.as_bytes());
    hash(&buf)
}

/// Bit `i` of `key`, most significant bit of byte 0 first (so bit order is
/// byte-string order).
pub(crate) fn bit(key: &[u8; 32], i: u8) -> usize {
    usize::from((key[usize::from(i / 8)] >> (7 - i % 8)) & 1)
}

/// First bit position at which `a` and `b` differ.
pub(crate) fn first_difference(a: &[u8; 32], b: &[u8; 32]) -> Option<u8> {
    let (i, (x, y)) = a.iter().zip(b).enumerate().find(|(_, (x, y))| x != y)?;
    // i < 32 and leading_zeros < 8, so this is < 256.
    u8::try_from(i * 8 + (x ^ y).leading_zeros() as usize).ok()
}

#[derive(Debug, Clone)]
enum Node {
    Leaf {
        key: [u8; 32],
        hash: Hash32,
    },
    /// `hash: None` means a leaf below changed and the hash must be recomputed.
    Branch {
        bit: u8,
        children: [usize; 2],
        hash: Option<Hash32>,
    },
}

/// The crit-bit Merkle tree, in an arena. Accounts are never deleted, so the
/// tree only grows: insertion and update, no removal.
#[derive(Debug, Clone, Default)]
pub(super) struct Tree {
    nodes: Vec<Node>,
    root: Option<usize>,
    /// Hashes computed for branches (instrumentation).
    pub(super) hashes: u64,
}

impl Tree {
    /// Inserts or updates the leaf for `key`, marking the path to it dirty.
    pub(super) fn upsert(&mut self, key: &[u8; 32], leaf: Hash32) {
        let Some(root) = self.root else {
            self.nodes.push(Node::Leaf {
                key: *key,
                hash: leaf,
            });
            self.root = Some(self.nodes.len() - 1);
            return;
        };
        // The leaf the search for `key` ends at shares the longest prefix with
        // `key` among all leaves (crit-bit property).
        let mut i = root;
        while let Node::Branch {
            bit: b, children, ..
        } = &self.nodes[i]
        {
            i = children[bit(key, *b)];
        }
        let closest = match &self.nodes[i] {
            Node::Leaf { key: k, .. } => *k,
            Node::Branch { .. } => return, // unreachable: the loop stops at a leaf
        };
        let split = first_difference(key, &closest);
        // Walk again, invalidating hashes, down to where `key` belongs: the
        // leaf itself (update) or the first node whose bit is beyond `split`.
        let mut parent: Option<(usize, usize)> = None;
        let mut i = root;
        loop {
            match &mut self.nodes[i] {
                Node::Branch {
                    bit: b,
                    children,
                    hash,
                } if split.is_none_or(|d| *b < d) => {
                    *hash = None;
                    let side = bit(key, *b);
                    parent = Some((i, side));
                    i = children[side];
                }
                Node::Leaf { hash, .. } if split.is_none() => {
                    *hash = leaf;
                    return;
                }
                _ => break,
            }
        }
        let Some(d) = split else { return };
        self.nodes.push(Node::Leaf {
            key: *key,
            hash: leaf,
        });
        let new_leaf = self.nodes.len() - 1;
        let children = if bit(key, d) == 0 {
            [new_leaf, i]
        } else {
            [i, new_leaf]
        };
        self.nodes.push(Node::Branch {
            bit: d,
            children,
            hash: None,
        });
        let branch = self.nodes.len() - 1;
        match parent {
            Some((p, side)) => {
                if let Node::Branch { children, .. } = &mut self.nodes[p] {
                    children[side] = branch;
                }
            }
            None => self.root = Some(branch),
        }
    }

    /// The root hash, recomputing dirty nodes.
    pub(super) fn root(&mut self) -> Hash32 {
        match self.root {
            None => Hash32::ZERO,
            Some(r) => self.hash_of(r),
        }
    }

    /// Depth is at most 257 (bits strictly increase along a path), so the
    /// recursion is bounded.
    fn hash_of(&mut self, i: usize) -> Hash32 {
        let (b, [l, r]) = match &self.nodes[i] {
            Node::Leaf { hash, .. } => return *hash,
            Node::Branch { hash: Some(h), .. } => return *h,
            Node::Branch { bit, children, .. } => (*bit, *children),
        };
        let h = node_hash(b, &self.hash_of(l), &self.hash_of(r));
        self.hashes += 1;
        if let Node::Branch { hash, .. } = &mut self.nodes[i] {
            *hash = Some(h);
        }
        h
    }
}
