//! The client's heap block: what exists only for a while (a SCRAM exchange during login, an
//! XEP-0198 session from `<enable/>` on, a resumption id), so an idle client without
//! XEP-0198 owns no heap and one with it owns one block.
//!
//! Layout, for the load generator's memory budget: the block holds the XEP-0198 counters and
//! the caller's per-session data inline, and one pointer to a second, rarer block (the SCRAM
//! exchange, the resumption id) that a PLAIN login without resumption never allocates.
//!
//! Invariants: `Stream::extra` is `None` when it would hold nothing, and `Extra::rare` is
//! `None` when it would hold nothing (`shrink`).

use rookery_sasl::ClientExchange;

use crate::sm::Sm;
use crate::stream::Stream;

/// State kept on the heap only while needed.
#[derive(Debug)]
pub(crate) struct Extra<X> {
    rare: Option<Box<Rare>>,
    sm: Option<Sm<X>>,
}

/// What few clients hold, and only for a while.
#[derive(Debug)]
struct Rare {
    sasl: Option<ClientExchange>,
    resume_id: Option<Box<str>>,
}

impl<X> Stream<X> {
    pub(crate) fn sm(&self) -> Option<&Sm<X>> {
        self.extra.as_ref()?.sm.as_ref()
    }

    pub(crate) fn sm_mut(&mut self) -> Option<&mut Sm<X>> {
        self.extra.as_mut()?.sm.as_mut()
    }

    /// Starts or ends the XEP-0198 session (ending it drops its resumption id).
    pub(crate) fn set_sm(&mut self, sm: Option<Sm<X>>) {
        if sm.is_none() {
            self.rare_mut().resume_id = None;
        }
        self.extra_mut().sm = sm;
        self.shrink();
    }

    pub(crate) fn resume_id(&self) -> Option<&str> {
        self.extra.as_ref()?.rare.as_ref()?.resume_id.as_deref()
    }

    pub(crate) fn set_resume_id(&mut self, id: Option<Box<str>>) {
        self.rare_mut().resume_id = id;
        self.shrink();
    }

    pub(crate) fn set_sasl(&mut self, sasl: Option<ClientExchange>) {
        self.rare_mut().sasl = sasl;
        self.shrink();
    }

    pub(crate) fn take_sasl(&mut self) -> Option<ClientExchange> {
        let sasl = self.extra.as_mut()?.rare.as_mut()?.sasl.take();
        self.shrink();
        sasl
    }

    fn extra_mut(&mut self) -> &mut Extra<X> {
        self.extra.get_or_insert_with(|| {
            Box::new(Extra {
                rare: None,
                sm: None,
            })
        })
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.extra_mut().rare.get_or_insert_with(|| {
            Box::new(Rare {
                sasl: None,
                resume_id: None,
            })
        })
    }

    /// Frees the blocks that hold nothing.
    fn shrink(&mut self) {
        let Some(extra) = &mut self.extra else { return };
        if extra
            .rare
            .as_ref()
            .is_some_and(|r| r.sasl.is_none() && r.resume_id.is_none())
        {
            extra.rare = None;
        }
        if extra.rare.is_none() && extra.sm.is_none() {
            self.extra = None;
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        let Some(extra) = &self.extra else { return 0 };
        let rare = extra.rare.as_ref().map_or(0, |r| {
            std::mem::size_of::<Rare>() + r.resume_id.as_ref().map_or(0, |id| id.len())
        });
        std::mem::size_of::<Extra<X>>() + rare
    }
}
