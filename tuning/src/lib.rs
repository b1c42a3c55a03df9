//! rookery-tune: kernel tuning profiles and the host check (skeleton; filled in by issue 6).
