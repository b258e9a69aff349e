//! Disjoint sets over `0..n` whose representative is always the smallest member, so "keep the
//! representative" means "keep the first document of each cluster in input order".

pub struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        assert!(u32::try_from(n).is_ok(), "at most 2^32 elements");
        Self {
            parent: (0..n as u32).collect(),
        }
    }

    /// The smallest member of `x`'s set (path halving keeps trees flat).
    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grandparent = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grandparent;
            x = grandparent;
        }
        x
    }

    /// Joins the sets of `a` and `b`; returns whether they were separate.
    pub fn union(&mut self, a: u32, b: u32) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (low, high) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[high as usize] = low;
        true
    }
}
