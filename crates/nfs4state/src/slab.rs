//! A bounded slab of stateid entries. An index is reused after its entry is freed, and each slot
//! has a generation bumped on every free, so a stateid naming a freed or reused slot is told
//! apart from the live one in O(1) (RFC 8881 §8.2.4: a server must detect stale and reused
//! `other` values).

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
    max: usize,
}

impl<T> Slab<T> {
    pub fn new(max: usize) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            max,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Stores `value` and returns its (index, generation), or gives it back when full.
    pub fn insert(&mut self, value: T) -> Result<(u32, u32), T> {
        if self.len >= self.max {
            return Err(value);
        }
        if let Some(index) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                slot.value = Some(value);
                self.len += 1;
                return Ok((index, slot.generation));
            }
        }
        // `max` is far below 2^32 (the limits bound it), so the index fits.
        let index = self.slots.len() as u32;
        self.slots.push(Slot {
            generation: 1,
            value: Some(value),
        });
        self.len += 1;
        Ok((index, 1))
    }

    pub fn remove(&mut self, index: u32) -> Option<T> {
        let slot = self.slots.get_mut(index as usize)?;
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.len -= 1;
        self.free.push(index);
        Some(value)
    }

    /// The live entry at `index` if its generation is `generation`.
    pub fn get(&self, index: u32, generation: u32) -> Option<&T> {
        let slot = self.slots.get(index as usize)?;
        (slot.generation == generation).then_some(())?;
        slot.value.as_ref()
    }

    pub fn generation(&self, index: u32) -> u32 {
        self.slots.get(index as usize).map_or(0, |s| s.generation)
    }

    pub fn at(&self, index: u32) -> Option<&T> {
        self.slots.get(index as usize)?.value.as_ref()
    }

    pub fn at_mut(&mut self, index: u32) -> Option<&mut T> {
        self.slots.get_mut(index as usize)?.value.as_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuse_changes_generation_and_max_holds() {
        let mut slab = Slab::new(2);
        let (a, gen_a) = slab.insert("a").unwrap();
        slab.insert("b").unwrap();
        assert_eq!(slab.insert("c"), Err("c"));
        assert_eq!(slab.remove(a), Some("a"));
        let (c, gen_c) = slab.insert("c").unwrap();
        assert_eq!(c, a);
        assert_ne!(gen_c, gen_a);
        assert_eq!(slab.get(a, gen_a), None);
        assert_eq!(slab.get(c, gen_c), Some(&"c"));
        assert_eq!(slab.len(), 2);
    }
}
