//! The end of a worker's run: every stream closed politely, then, past the grace, aborted.
//!
//! What it does not do: decide when (see `advance_phase` in the parent module).

use rookery_io::{Linger, Ops};

use super::slot::SlotState;
use super::{RunPhase, Worker, ABORT_GRACE_NS, CLOSE_GRACE_NS};

impl Worker<'_> {
    /// Ends every stream politely: `</stream:stream>` now (group: after leaving every room
    /// joined, XEP-0045 7.14), the conn closed when the server answers with its own (or
    /// closes), so the server is the active closer and TIME_WAIT does not pile up on our ports
    /// across runs.
    pub(super) fn begin_closing<O: Ops>(&mut self, io: &mut O, now: u64) {
        self.accounting_open = false;
        self.storming = false;
        self.reconnects.clear();
        self.next_connect = self.slots.len();
        self.phase = RunPhase::Closing {
            deadline_ns: now + CLOSE_GRACE_NS,
            aborted: false,
        };
        let names = self.names();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(conn) = slot.conn else { continue };
            self.out.clear();
            if let (Some(g), SlotState::Online) = (self.fan.group_mut(), slot.state) {
                for &group in g.joined(i) {
                    names.write_leave(&mut self.out, group, slot.index);
                }
            }
            slot.client.close(&mut self.out);
            if self.out.is_empty() || io.send(conn, &self.out).is_err() {
                io.close(conn, Linger::Abort);
            }
            if slot.state == SlotState::Online {
                self.shared.set_online(slot.index, false);
                self.online -= 1;
            }
            slot.state = SlotState::Closing;
        }
    }

    /// The close grace ran out: abort what is left and allow a short while for the driver to
    /// report it.
    pub(super) fn abort_remaining<O: Ops>(&mut self, io: &mut O, now: u64) {
        for conn in self.slots.iter().filter_map(|s| s.conn) {
            io.close(conn, Linger::Abort);
        }
        self.phase = RunPhase::Closing {
            deadline_ns: now + ABORT_GRACE_NS,
            aborted: true,
        };
    }
}
