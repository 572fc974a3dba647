//! The task table's slots: every live task's cell pointer, by the slab index in its key.
//!
//! A slab (the `slab` crate's design, written here so that the table can hand out a slot's
//! address): a `Vec` of slots, each holding a task's [`TaskCell`] or, when vacant, the index of
//! the next vacant slot. The vacant slots form a LIFO list, so a freed index is the next one
//! reused, and the `Vec` only grows when none is free.
//!
//! # Invariants
//! - `len` is the number of occupied slots.
//! - `next` is the first vacant slot, or `slots.len()` when none is; following `Vacant` links
//!   from it visits every vacant slot once and ends at `slots.len()`.
//! - A slot's address is stable until the table grows or is dropped; it is only ever used as a
//!   prefetch hint ([`prefetch`](Slots::prefetch)), never dereferenced, so a stale one is harmless.
//!
//! Why not the `slab` crate any more: phase 6's look-ahead (src/runtime/lookahead.rs) fetches a
//! task's slot before it reads it, for which it needs the slot's address without loading it;
//! the crate offers no such thing. A slot is 16 bytes, as in the crate: the cell's fat pointer,
//! or a vacant link stored in the place of its vtable half (a test checks it).

use super::cell::{prefetch, TaskCell};

/// One slot: a live task's cell, or the link to the next vacant slot.
enum Slot {
    Occupied(TaskCell),
    Vacant(usize),
}

/// The slots of the task table (see the module docs).
#[derive(Default)]
pub(crate) struct Slots {
    slots: Vec<Slot>,
    /// Occupied slots.
    len: usize,
    /// The first vacant slot, or `slots.len()`.
    next: usize,
}

impl Slots {
    /// The number of live tasks.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Returns true if no task is live.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of slots the buffer holds without growing.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    /// The cell in slot `index`, if it is occupied.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<&TaskCell> {
        match self.slots.get(index) {
            Some(Slot::Occupied(cell)) => Some(cell),
            _ => None,
        }
    }

    /// The cell in slot `index`, if it is occupied, to change its header.
    #[inline]
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut TaskCell> {
        match self.slots.get_mut(index) {
            Some(Slot::Occupied(cell)) => Some(cell),
            _ => None,
        }
    }

    /// The index the next [`insert`](Self::insert) will use.
    #[inline(always)]
    pub(crate) fn vacant_key(&self) -> usize {
        self.next
    }

    /// Puts `cell` in the slot [`vacant_key`](Self::vacant_key) named; returns its index.
    #[inline(always)]
    pub(crate) fn insert(&mut self, cell: TaskCell) -> usize {
        let index = self.next;
        self.len += 1;
        if index == self.slots.len() {
            self.slots.push(Slot::Occupied(cell));
            self.next = index + 1;
        } else {
            match std::mem::replace(&mut self.slots[index], Slot::Occupied(cell)) {
                Slot::Vacant(next) => self.next = next,
                // The vacant list names only vacant slots (invariant).
                Slot::Occupied(_) => unreachable!("aioloop: the task table's vacant list names an occupied slot"),
            }
        }
        index
    }

    /// Takes the cell out of slot `index`, which must be occupied.
    ///
    /// # Panics
    /// If the slot is vacant (a bug of the loop, never of its user).
    #[inline(always)]
    pub(crate) fn remove(&mut self, index: usize) -> TaskCell {
        let slot = self.slots.get_mut(index).expect("aioloop: removed a task that is not in the table");
        match std::mem::replace(slot, Slot::Vacant(self.next)) {
            Slot::Occupied(cell) => {
                self.len -= 1;
                self.next = index;
                cell
            }
            Slot::Vacant(next) => {
                *slot = Slot::Vacant(next);
                panic!("aioloop: removed a task that is not in the table")
            }
        }
    }

    /// Every live task's index and cell, in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &TaskCell)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Occupied(cell) => Some((i, cell)),
            Slot::Vacant(_) => None,
        })
    }

    /// [`iter`](Self::iter), with the cells' headers mutable.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (usize, &mut TaskCell)> + '_ {
        self.slots.iter_mut().enumerate().filter_map(|(i, s)| match s {
            Slot::Occupied(cell) => Some((i, cell)),
            Slot::Vacant(_) => None,
        })
    }

    /// Asks the CPU to fetch slot `index` into its caches (a look-ahead's hint; out of range or
    /// vacant, it is a wasted fetch).
    #[inline(always)]
    pub(crate) fn prefetch(&self, index: usize) {
        prefetch(self.slots.as_ptr().wrapping_add(index));
    }
}

impl std::ops::Index<usize> for Slots {
    type Output = TaskCell;

    /// # Panics
    /// If the slot is vacant (the loop only indexes with keys it checked).
    #[inline]
    fn index(&self, index: usize) -> &TaskCell {
        self.get(index).expect("aioloop: no task at this index")
    }
}

impl std::ops::IndexMut<usize> for Slots {
    #[inline]
    fn index_mut(&mut self, index: usize) -> &mut TaskCell {
        self.get_mut(index).expect("aioloop: no task at this index")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::task::{Header, Status};

    fn cell(id: u64) -> TaskCell {
        TaskCell::new(Header::new(id, Status::Idle, false, false), std::future::ready(()))
    }

    #[test]
    fn a_slot_is_16_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
    }

    #[test]
    fn freed_indices_are_reused_last_freed_first() {
        let mut s = Slots::default();
        let idx: Vec<usize> = (0..4).map(|i| s.insert(cell(i))).collect();
        assert_eq!(idx, [0, 1, 2, 3]);
        assert_eq!(s.len(), 4);
        assert_eq!({ s.remove(1).id }, 1);
        assert_eq!({ s.remove(3).id }, 3);
        assert!(s.get(1).is_none() && s.get(3).is_none() && s.get(9).is_none());
        assert_eq!(s.vacant_key(), 3);
        assert_eq!(s.insert(cell(10)), 3);
        assert_eq!(s.insert(cell(11)), 1);
        assert_eq!(s.insert(cell(12)), 4);
        assert_eq!(s.iter().map(|(i, c)| (i, c.id)).collect::<Vec<_>>(), [(0, 0), (1, 11), (2, 2), (3, 10), (4, 12)]);
        assert_eq!({ s[3].id }, 10);
        s[3].set_quiet();
        assert!(s.get(3).unwrap().quiet());
        for i in 0..5 {
            s.remove(i);
        }
        assert!(s.is_empty());
        s.prefetch(1_000_000); // a hint: out of range is fine
    }

    #[test]
    #[should_panic(expected = "not in the table")]
    fn removing_a_vacant_slot_panics() {
        let mut s = Slots::default();
        s.insert(cell(1));
        s.remove(0);
        s.remove(0);
    }
}
