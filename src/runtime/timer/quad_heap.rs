//! The 4-ary min-heap that orders the buckets by millisecond.

/// A bucket in the heap: its millisecond and its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Node {
    pub(super) ms: u64,
    pub(super) bucket: u32,
}

/// A 4-ary min-heap of buckets in a `Vec`: the children of node `i` are `4i + 1 ..= 4i + 4`.
#[derive(Default)]
pub(super) struct QuadHeap(pub(super) Vec<Node>);

impl QuadHeap {
    pub(super) const ARITY: usize = 4;

    #[inline]
    pub(super) fn peek(&self) -> Option<Node> {
        self.0.first().copied()
    }

    #[inline]
    pub(super) fn push(&mut self, node: Node) {
        self.0.push(node);
        self.sift_up(self.0.len() - 1);
    }

    #[inline]
    pub(super) fn pop(&mut self) -> Option<Node> {
        let last = self.0.pop()?;
        if self.0.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.0[0], last);
        self.sift_down(0);
        Some(top)
    }

    /// Keeps the nodes `keep` accepts and restores the heap order (O(n), nothing if all stay).
    #[inline]
    pub(super) fn retain(&mut self, keep: impl FnMut(&Node) -> bool) {
        let len = self.0.len();
        self.0.retain(keep);
        if self.0.len() > 1 && self.0.len() < len {
            for i in (0..=(self.0.len() - 2) / Self::ARITY).rev() {
                self.sift_down(i);
            }
        }
    }

    /// Moves the node at `i` up while it is earlier than its parent.
    #[inline]
    pub(super) fn sift_up(&mut self, mut i: usize) {
        let node = self.0[i];
        while i > 0 {
            let parent = (i - 1) / Self::ARITY;
            if self.0[parent] <= node {
                break;
            }
            self.0[i] = self.0[parent];
            i = parent;
        }
        self.0[i] = node;
    }

    /// Moves the node at `i` down while a child is earlier.
    #[inline]
    pub(super) fn sift_down(&mut self, mut i: usize) {
        let len = self.0.len();
        let node = self.0[i];
        loop {
            let first = i * Self::ARITY + 1;
            if first >= len {
                break;
            }
            let end = (first + Self::ARITY).min(len);
            let mut min = first;
            for c in first + 1..end {
                if self.0[c] < self.0[min] {
                    min = c;
                }
            }
            if node <= self.0[min] {
                break;
            }
            self.0[i] = self.0[min];
            i = min;
        }
        self.0[i] = node;
    }
}
