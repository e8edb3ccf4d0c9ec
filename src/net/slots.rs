//! A table of peers named by small integers, each slot reused after removal under a new generation,
//! so that an id kept past its peer's end never reaches the next peer in the same slot.

use super::PeerId;

/// Items by [`PeerId`].
pub(super) struct Slots<T> {
    items: Vec<(u32, Option<T>)>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Slots<T> {
    pub(super) fn new() -> Self {
        Slots { items: Vec::new(), free: Vec::new(), len: 0 }
    }

    /// Items held now.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn insert(&mut self, item: T) -> PeerId {
        self.len += 1;
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.items.push((0, None));
                self.items.len() - 1
            }
        };
        let (generation, place) = &mut self.items[slot];
        *place = Some(item);
        PeerId { slot, generation: *generation }
    }

    pub(super) fn remove(&mut self, id: PeerId) -> Option<T> {
        let (generation, place) = self.items.get_mut(id.slot).filter(|(g, _)| *g == id.generation)?;
        let item = place.take()?;
        *generation = generation.wrapping_add(1);
        self.free.push(id.slot);
        self.len -= 1;
        Some(item)
    }

    pub(super) fn get(&self, id: PeerId) -> Option<&T> {
        self.items.get(id.slot).filter(|(g, _)| *g == id.generation)?.1.as_ref()
    }

    pub(super) fn get_mut(&mut self, id: PeerId) -> Option<&mut T> {
        self.items.get_mut(id.slot).filter(|(g, _)| *g == id.generation)?.1.as_mut()
    }

    /// The id of whatever holds `slot` now.
    pub(super) fn at(&self, slot: usize) -> Option<PeerId> {
        let (generation, item) = self.items.get(slot)?;
        item.as_ref().map(|_| PeerId { slot, generation: *generation })
    }

    pub(super) fn ids(&self) -> Vec<PeerId> {
        (0..self.items.len()).filter_map(|slot| self.at(slot)).collect()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (PeerId, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(slot, (generation, item))| Some((PeerId { slot, generation: *generation }, item.as_ref()?)))
    }

    /// The peers for which `stale` holds, to be closed by the caller.
    pub(super) fn matching(&self, stale: impl Fn(&T) -> bool) -> Vec<PeerId> {
        self.iter().filter(|(_, item)| stale(item)).map(|(id, _)| id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn a_reused_slot_does_not_answer_to_an_old_id() {
        let mut slots = Slots::new();
        let a = slots.insert("a");
        assert_eq!(slots.remove(a), Some("a"));
        let b = slots.insert("b");
        assert_eq!((a.slot, slots.get(a), slots.get(b)), (b.slot, None, Some(&"b")));
        assert_eq!((slots.len(), slots.ids(), slots.matching(|s| *s == "b")), (1, vec![b], vec![b]));
    }
}
