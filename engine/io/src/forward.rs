//! The part of each backend's public types that only forwards to its core, written once.
//!
//! `PollOps` and `UringOps` are each a `&mut` to their backend's core and nothing else, and
//! both cores offer the same calls (`send`, `detach`, `adopt`, `connect`, `listen`,
//! `stop_listening`, `write_file`, `read_file` as inherent methods; `close` and `queued_bytes` from
//! `lifecycle`), a `conns` field, a `files` field (`files::Files`) and a `waker` field. So
//! [`forward_ops!`] writes the whole `Ops` impl and [`driver_items!`] every `Driver` item
//! except `turn`. Macros rather than a generic impl, so the two public types stay distinct,
//! concrete and free of dynamic dispatch.
//!
//! What it does not do: `turn`, the driver and ops structs, or anything that differs between
//! the backends.

/// `impl Ops for $ops<'_>`, forwarding every call to `self.core`.
macro_rules! forward_ops {
    ($ops:ident) => {
        impl $crate::Ops for $ops<'_> {
            fn send(
                &mut self,
                conn: $crate::ConnId,
                bytes: &[u8],
            ) -> Result<(), $crate::SendError> {
                self.core.send(conn, bytes)
            }

            fn close(&mut self, conn: $crate::ConnId, linger: $crate::Linger) {
                $crate::lifecycle::Lifecycle::close(self.core, conn, linger)
            }

            fn detach(&mut self, conn: $crate::ConnId) {
                self.core.detach(conn)
            }

            fn adopt(
                &mut self,
                socket: ::std::os::fd::OwnedFd,
            ) -> ::std::io::Result<$crate::ConnId> {
                self.core.adopt(socket)
            }

            fn connect(
                &mut self,
                peer: ::std::net::SocketAddr,
                source: Option<::std::net::SocketAddr>,
            ) -> ::std::io::Result<$crate::ConnId> {
                self.core.connect(peer, source)
            }

            fn queued_bytes(&self, conn: $crate::ConnId) -> usize {
                self.core.conns.queued_bytes(conn)
            }

            fn write_file(
                &mut self,
                file: $crate::FileId,
                offset: u64,
                bytes: Vec<u8>,
                sync: $crate::FileSync,
            ) -> u64 {
                self.core.write_file(file, offset, bytes, sync)
            }

            fn read_file(
                &mut self,
                file: $crate::FileId,
                offset: u64,
                len: usize,
                buffer: Vec<u8>,
            ) -> u64 {
                self.core.read_file(file, offset, len, buffer)
            }
        }
    };
}
pub(crate) use forward_ops;

/// The `Driver` items other than `type Ops` and `turn`, for a driver with a `core` field whose
/// ops type is `$ops` (built as `$ops { core }`) and whose backend is `$kind`.
macro_rules! driver_items {
    ($ops:ident, $kind:expr) => {
        fn listen(
            &mut self,
            listener: ::std::net::TcpListener,
        ) -> ::std::io::Result<$crate::ListenerId> {
            self.core.listen(listener)
        }

        fn stop_listening(&mut self) {
            self.core.stop_listening();
        }

        fn ops(&mut self) -> $ops<'_> {
            $ops {
                core: &mut self.core,
            }
        }

        fn wake_handle(&self) -> $crate::WakeHandle {
            $crate::WakeHandle::new(self.core.waker.clone())
        }

        fn open_conns(&self) -> usize {
            self.core.conns.len()
        }

        fn kind(&self) -> $crate::BackendKind {
            $kind
        }

        fn register_file(&mut self, file: ::std::fs::File) -> ::std::io::Result<$crate::FileId> {
            self.core.files.register(file)
        }

        fn unregister_file(&mut self, file: $crate::FileId) -> Option<::std::fs::File> {
            self.core.files.unregister(file)
        }
    };
}
pub(crate) use driver_items;
