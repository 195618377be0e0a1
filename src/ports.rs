//! The RTP port pool: even RTP ports (RTCP on port+1) handed out from a
//! configured range, released when a call ends. Bookkeeping only; the actor
//! layer binds the sockets.

use std::collections::{HashSet, VecDeque};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PortRangeError {
    #[error("port range must look like LO-HI, got {0:?}")]
    Syntax(String),
    #[error("port range {0}-{1} holds no even RTP/RTCP pair")]
    Empty(u16, u16),
}

/// Parse `LO-HI` (inclusive).
pub fn parse_range(s: &str) -> Result<(u16, u16), PortRangeError> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| PortRangeError::Syntax(s.to_owned()))?;
    let lo: u16 = lo
        .trim()
        .parse()
        .map_err(|_| PortRangeError::Syntax(s.to_owned()))?;
    let hi: u16 = hi
        .trim()
        .parse()
        .map_err(|_| PortRangeError::Syntax(s.to_owned()))?;
    if lo == 0 || hi < lo.saturating_add(1) {
        return Err(PortRangeError::Empty(lo, hi));
    }
    Ok((lo, hi))
}

/// Even ports `p` with `p+1` also in range, handed out oldest-released first
/// so a port is not reused while stray packets of its last call still arrive.
#[derive(Debug, Clone)]
pub struct PortPool {
    free: VecDeque<u16>,
    in_use: HashSet<u16>,
    capacity: usize,
}

impl PortPool {
    pub fn new(lo: u16, hi: u16) -> Result<Self, PortRangeError> {
        let first = if lo.is_multiple_of(2) {
            lo
        } else {
            lo.saturating_add(1)
        };
        let free: VecDeque<u16> = (first..hi)
            .step_by(2)
            .filter(|p| p.checked_add(1).is_some_and(|q| q <= hi))
            .collect();
        if free.is_empty() {
            return Err(PortRangeError::Empty(lo, hi));
        }
        let capacity = free.len();
        Ok(Self {
            free,
            in_use: HashSet::new(),
            capacity,
        })
    }

    /// An RTP port (its RTCP port is `+1`), or `None` when exhausted.
    pub fn allocate(&mut self) -> Option<u16> {
        let p = self.free.pop_front()?;
        self.in_use.insert(p);
        Some(p)
    }

    /// Return a port; unknown or already-free ports are ignored.
    pub fn release(&mut self, port: u16) {
        if self.in_use.remove(&port) {
            self.free.push_back(port);
        }
    }

    pub fn available(&self) -> usize {
        self.free.len()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_and_inside_range() {
        let mut p = PortPool::new(40001, 40010).unwrap();
        let mut got = vec![];
        while let Some(x) = p.allocate() {
            got.push(x);
        }
        assert_eq!(got, vec![40002, 40004, 40006, 40008]);
        assert_eq!(p.available(), 0);
        p.release(40004);
        p.release(40004);
        p.release(1234);
        assert_eq!(p.available(), 1);
        assert_eq!(p.allocate(), Some(40004));
    }

    #[test]
    fn released_ports_go_to_the_back() {
        let mut p = PortPool::new(10000, 10007).unwrap();
        let a = p.allocate().unwrap();
        p.release(a);
        assert_ne!(p.allocate(), Some(a));
    }

    #[test]
    fn range_parsing() {
        assert_eq!(parse_range("40000-49999"), Ok((40000, 49999)));
        assert!(parse_range("40000").is_err());
        assert!(parse_range("5-4").is_err());
        assert!(parse_range("a-b").is_err());
        assert!(PortPool::new(65535, 65535).is_err());
        assert!(PortPool::new(3, 4).is_err());
    }
}
