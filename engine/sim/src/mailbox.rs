//! The simulated mail transport of one shard (`rookery::seams::MailTransport`): what the real
//! loop stages during a turn is posted at its flush for the world, which carries it through
//! its lanes (seeded delays, per-pair FIFO, the mail canaries: see `mail`) and drops it into
//! the destination's inbox, then schedules that shard's turn.
//!
//! What it does not do: delay or order anything itself, or wake (the world schedules turns).
//!
//! Invariants: a flush posts everything staged, in staging order (the world's lanes are
//! bounded by `LANE_MAX` and exceeding it is a violation, so nothing stays staged); the inbox
//! is drained FIFO in the order the world delivered.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use rookery::seams::MailTransport;
use rookery::shard::ShardMail;
use rookery_mailbox::{FlushStats, ShardId, WakeFn};

/// The part of a shard's mailbox the world reaches: mail posted, mail delivered.
#[derive(Default)]
pub struct Post {
    /// (destination, mail) flushed by the shard and not yet taken by the world.
    pub posted: Vec<(u16, ShardMail)>,
    /// (source, mail) the world delivered and the shard has not drained yet.
    pub inbox: VecDeque<(u16, ShardMail)>,
}

/// One shard's simulated mailbox.
pub struct SimMailbox {
    staging: Vec<(u16, ShardMail)>,
    post: Rc<RefCell<Post>>,
}

impl SimMailbox {
    pub fn new(post: Rc<RefCell<Post>>) -> SimMailbox {
        SimMailbox {
            staging: Vec::new(),
            post,
        }
    }
}

impl MailTransport<ShardMail> for SimMailbox {
    fn set_waker(&self, _wake: WakeFn) {}

    fn stage(&mut self, dest: ShardId, msg: ShardMail) {
        self.staging.push((dest.0, msg));
    }

    fn flush(&mut self) -> FlushStats {
        let pushed = self.staging.len();
        self.post.borrow_mut().posted.append(&mut self.staging);
        FlushStats {
            pushed,
            ..FlushStats::default()
        }
    }

    fn drain(&mut self, max: usize, mut f: impl FnMut(ShardId, ShardMail)) -> usize {
        let mut taken = 0;
        while taken < max {
            // Not borrowed across `f`: it only collects, but keep the borrow short anyway.
            let Some((src, mail)) = self.post.borrow_mut().inbox.pop_front() else {
                break;
            };
            f(ShardId(src), mail);
            taken += 1;
        }
        taken
    }

    fn prepare_to_sleep(&self) -> bool {
        self.post.borrow().inbox.is_empty()
    }

    fn awake(&self) {}

    fn staged(&self) -> usize {
        self.staging.len()
    }
}
