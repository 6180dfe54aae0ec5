//! Bounding the daemon's connections: at most [`MAX_CONNECTIONS`] open at once. When a new
//! connection would exceed that, the oldest *idle* one (no request in flight: a keep-alive
//! connection between requests, or one that has not sent a request yet) is closed to make
//! room, so a flood of idle connections cannot lock out a real client, whose request
//! arrives right after it connects. Only when every connection is busy is the newcomer
//! refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Connections open at once. Far above what the CLI needs (one per command, plus one per
/// `vm exec` and `vm logs -f`), far below the file-descriptor limit.
pub const MAX_CONNECTIONS: usize = 512;

/// The open connections, oldest first.
pub struct Conns {
    limit: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    open: BTreeMap<u64, Entry>,
    /// Connections closed or refused in the current episode of pressure.
    evicted: u64,
    refused: u64,
}

struct Entry {
    busy: usize,
    close: Option<oneshot::Sender<()>>,
}

/// Admission of one connection; dropping it (every clone) forgets the connection.
pub struct Ticket {
    conns: Arc<Conns>,
    id: u64,
}

/// A request in flight on a connection; dropping it (when the response body is done)
/// makes the connection idle again.
pub struct Busy {
    conns: Arc<Conns>,
    id: u64,
}

/// An admitted connection: its ticket, and the receiver that fires when it is evicted.
pub type Admitted = (Arc<Ticket>, oneshot::Receiver<()>);

/// What [`Conns::admit`] did about the limit, for the caller to log once per episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    None,
    /// The first eviction or refusal of an episode.
    Began,
    /// An episode goes on.
    Ongoing,
}

impl Conns {
    pub fn new(limit: usize) -> Arc<Conns> {
        Arc::new(Conns {
            limit: limit.max(1),
            inner: Mutex::default(),
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every update is a few statements on plain maps and counters; a panic cannot
        // leave them inconsistent in a way that matters.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn open(&self) -> usize {
        self.inner().open.len()
    }

    /// Admit a new connection, closing the oldest idle one if the limit is reached. With the
    /// ticket comes a receiver that fires when the connection is evicted (its task must then
    /// drop it). `None`: every connection is busy; refuse this one.
    pub fn admit(self: &Arc<Self>) -> (Option<Admitted>, Pressure) {
        let mut inner = self.inner();
        let mut pressure = Pressure::None;
        if inner.open.len() >= self.limit {
            let first = inner.evicted + inner.refused == 0;
            pressure = if first {
                Pressure::Began
            } else {
                Pressure::Ongoing
            };
            let idle = inner
                .open
                .iter()
                .find(|(_, entry)| entry.busy == 0)
                .map(|(id, _)| *id);
            match idle {
                Some(id) => {
                    if let Some(mut entry) = inner.open.remove(&id)
                        && let Some(close) = entry.close.take()
                    {
                        let _ = close.send(());
                    }
                    inner.evicted += 1;
                }
                None => {
                    inner.refused += 1;
                    return (None, pressure);
                }
            }
        }
        let id = inner.next;
        inner.next += 1;
        let (close, evicted) = oneshot::channel();
        inner.open.insert(
            id,
            Entry {
                busy: 0,
                close: Some(close),
            },
        );
        let ticket = Ticket {
            conns: self.clone(),
            id,
        };
        (Some((Arc::new(ticket), evicted)), pressure)
    }

    /// Ends an episode of pressure once the count is back under half the limit; returns
    /// how many connections were evicted and refused during it (for one summary line).
    pub fn relieved(&self) -> Option<(u64, u64)> {
        let mut inner = self.inner();
        if inner.evicted + inner.refused == 0 || inner.open.len() > self.limit / 2 {
            return None;
        }
        let counts = (inner.evicted, inner.refused);
        inner.evicted = 0;
        inner.refused = 0;
        Some(counts)
    }
}

impl Ticket {
    /// Marks a request in flight on this connection.
    pub fn busy(&self) -> Busy {
        if let Some(entry) = self.conns.inner().open.get_mut(&self.id) {
            entry.busy += 1;
        }
        Busy {
            conns: self.conns.clone(),
            id: self.id,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.conns.inner().open.remove(&self.id);
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(entry) = self.conns.inner().open.get_mut(&self.id) {
            entry.busy = entry.busy.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_idle_connection_makes_room() {
        let conns = Conns::new(3);
        let (a, _) = conns.admit();
        let (b, _) = conns.admit();
        let (c, _) = conns.admit();
        let ((a, _a_ev), (b, mut b_ev), (c, _c_ev)) = (a.unwrap(), b.unwrap(), c.unwrap());
        let _busy_a = a.busy();
        // Full: the oldest idle one (b, since a is busy) is closed.
        let (d, pressure) = conns.admit();
        assert_eq!(pressure, Pressure::Began);
        let (d, _d_ev) = d.unwrap();
        assert_eq!(b_ev.try_recv(), Ok(()));
        assert_eq!(conns.open(), 3);
        // Everyone busy: refused.
        let busy_c = c.busy();
        let busy_d = d.busy();
        let (e, pressure) = conns.admit();
        assert!(e.is_none());
        assert_eq!(pressure, Pressure::Ongoing);
        drop(b);
        assert_eq!(conns.open(), 3);
        assert_eq!(conns.relieved(), None, "still full");
        drop((busy_c, c, busy_d, d));
        assert_eq!(conns.relieved(), Some((1, 1)));
        assert_eq!(conns.relieved(), None, "the episode ended");
    }

    #[test]
    fn a_finished_request_makes_its_connection_idle_again() {
        let conns = Conns::new(1);
        let (a, _) = conns.admit();
        let (a, mut a_ev) = a.unwrap();
        {
            let _busy = a.busy();
            assert!(conns.admit().0.is_none());
        }
        let (b, _) = conns.admit();
        assert!(b.is_some());
        assert_eq!(a_ev.try_recv(), Ok(()));
    }
}
